"""Every error the service returns has one JSON shape, and domain errors map to 4xx in one place.

``{"error": {"status": 422, "code": "too_many_texts", "message": "..."}}``. Bad input never
reaches a 500: validation errors, unknown IRIs, malformed triples and oversized bodies each have
their own status. An unexpected failure is a 500 with a generic message and a logged traceback.
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from fusion.bundle import BundleError
from fusion.resources import UnknownRelationError
from kg.errors import (
    AmbiguousEntityError,
    EntityNotFoundError,
    KGFuseError,
    KGLoadError,
    KGReadOnlyError,
    KGStoreError,
)

log = logging.getLogger("kgfuse.api")


class APIError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a readable message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


# Domain errors, most specific first: (class, status, code).
DOMAIN_ERRORS: tuple[tuple[type[KGFuseError], int, str], ...] = (
    (EntityNotFoundError, 404, "not_found"),
    (AmbiguousEntityError, 409, "ambiguous"),
    (KGLoadError, 422, "bad_triples"),
    (BundleError, 503, "bundle_unavailable"),
    (KGReadOnlyError, 409, "read_only"),
    (UnknownRelationError, 409, "unknown_relation"),  # the model's relation ids are fixed
    (KGStoreError, 503, "kg_unavailable"),  # the triple store a model reads failed to answer
    (KGFuseError, 422, "bad_input"),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _json_error(error: dict[str, Any], body: Any) -> str:
    """A JSON syntax error with where it is (line, column) and the body to send instead."""
    problem = str(error.get("ctx", {}).get("error", "")).removesuffix(" at")
    message = "the body is not valid JSON: " + problem
    loc = tuple(error.get("loc", ()))
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is not None and isinstance(body, str):
        line = body.count("\n", 0, pos) + 1
        column = pos - (body.rfind("\n", 0, pos) + 1) + 1
        message += f" at line {line}, column {column}"
    if problem == "Invalid control character":  # a raw newline or tab inside a string
        message += " (write a newline in a string as \\n, a tab as \\t)"
    return f"{message}; send an object such as {EXAMPLE}"


def validation_message(errors: list[dict[str, Any]], body: Any = None) -> str:
    parts = []
    for e in errors[:5]:
        if e.get("type") == "json_invalid":
            parts.append(_json_error(e, body))
        else:
            where, message = _location(tuple(e.get("loc", ()))), str(e.get("msg", "invalid"))
            # it names the item itself (texts[3] is ...), or it is about the whole body
            named = where == "body" or message.startswith(f"{where}[")
            parts.append(message if named else f"{where}: {message}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


INTERNAL = "internal error; the server log has the details"
DISCONNECTED = "the client closed the connection before the whole body came; send it again"
EXAMPLE = '{"texts": ["my new earbuds crackle"]}'  # the one JSON body the API takes


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def body_problem(media: str, errors: list[dict[str, Any]]) -> tuple[int, str, str] | None:
    """What is wrong with a request body as a whole (empty, not sent as JSON, not a JSON
    object), as (status, code, message) with the fix; None when only its fields are wrong.

    Args:
        media: the request's Content-Type header ("" when it has none).
        errors: the validation errors of the request.
    """
    whole = next(
        (
            e
            for e in errors
            if tuple(e.get("loc", ())) == ("body",) and e.get("type") != "unknown_fields"
        ),
        None,
    )
    if whole is None:
        return None
    if whole.get("type") == "missing":
        return 422, "invalid_request", f"the body is empty; send a JSON object such as {EXAMPLE}"
    main = media.split(";")[0].strip().lower()
    if main != "application/json" and not (main.startswith("application/") and "+json" in main):
        return (
            415,
            "unsupported_media_type",
            f"the body must be JSON sent with Content-Type: application/json (got "
            f"{repr(media) if media else 'none'}); send a JSON object such as {EXAMPLE}",
        )
    got = _json_kind(whole.get("input"))
    return 422, "invalid_request", f"the body must be a JSON object such as {EXAMPLE}, not {got}"


def unreadable_body(exc: StarletteHTTPException) -> str | None:
    """What made FastAPI's bare 400 "There was an error parsing the body" (a body that is not
    UTF-8, JSON nested past the parser's depth, a number past Python's digit limit), said as a
    fix; None for any other error."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex().upper()
        return (
            f"the body is not valid JSON: it is not UTF-8 (byte 0x{byte} at offset {cause.start});"
            " send the JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return (
            "the body is not valid JSON: its arrays or objects nest too deep to parse; send an "
            f"object such as {EXAMPLE}"
        )
    if isinstance(cause, ValueError) and "digits" in str(cause):  # Python's int size guard
        return (
            f"the body holds a number of more than {sys.get_int_max_str_digits()} digits, "
            f"which cannot be read; send an object such as {EXAMPLE}"
        )
    return None


def _routed(request: Request, path: str) -> bool:
    """Whether a route of the app serves ``path`` (by any method)."""
    probe = {**request.scope, "path": path}
    return any(r.matches(probe)[0] != Match.NONE for r in request.app.router.routes)


def routing_message(request: Request, status: int, headers: dict[str, str] | None) -> str | None:
    """The fix for the router's bare "Not Found" (no route at this path) and "Method Not
    Allowed" (a route, not for this method), which name neither; None for other statuses."""
    path = request.url.path
    shown = repr(path if len(path) <= 200 else path[:200] + "...")
    docs = "the API's routes are listed at /docs and /openapi.json"
    if status == 404:
        if len(path) > 1 and path.endswith("/") and _routed(request, path.rstrip("/")):
            return f"nothing is served at {shown}; send it without the trailing slash, to {path.rstrip('/')!r}"
        return f"nothing is served at {shown} (check it for typos or stray characters); {docs}"
    if status == 405:
        allowed = (headers or {}).get("Allow", "")
        method = request.method[:20]
        return f"{shown} does not take {method}; send {allowed or 'another method'} ({docs})"
    return None


def describe_error(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) of any exception: its own for `APIError`, the `DOMAIN_ERRORS`
    row for a domain error, 500 ``internal`` (message withheld) for anything else."""
    if isinstance(exc, APIError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, KGFuseError):
        for cls, status, code in DOMAIN_ERRORS:
            if isinstance(exc, cls):
                return status, code, str(exc)
    return 500, "internal", INTERNAL


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        problem = body_problem(request.headers.get("content-type", ""), errors)
        if problem is not None:
            return error_response(*problem)
        return error_response(422, "invalid_request", validation_message(errors, exc.body))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client's fault, not the server's: no 500 in the metrics, no traceback in the log
        return error_response(400, "client_disconnected", DISCONNECTED)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's 400 reading the body
            return await _gone(request, exc.__cause__)
        unreadable = unreadable_body(exc)
        if unreadable is not None:  # as malformed JSON is
            return error_response(422, "invalid_request", unreadable)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        allow = (headers or {}).get("Allow", "")
        if "GET" in allow.split(", ") and "HEAD" not in allow:  # api.app.HeadAsGet serves it
            headers = {**(headers or {}), "Allow": allow + ", HEAD"}
        message = str(exc.detail)
        if message == HTTPStatus(exc.status_code).phrase:  # no message of its own
            message = routing_message(request, exc.status_code, headers) or message
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(KGFuseError)
    async def _domain(request: Request, exc: KGFuseError) -> JSONResponse:
        return error_response(*describe_error(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", INTERNAL)
