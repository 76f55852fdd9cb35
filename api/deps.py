"""The dependency that hands the engine to routes (tests swap it with dependency_overrides), and
those that refuse what a route would misread: query parameters it does not take, a URL whose
%-escapes are not UTF-8."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request

from api.engine import Engine
from api.errors import APIError


def get_engine(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise APIError(
            503, "not_ready", "the model is still loading; retry shortly", {"Retry-After": "5"}
        )
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def query_takes(*names: str, hint: str = "") -> Any:
    """A route dependency refusing query parameters other than ``names``, which the route
    would ignore silently (``POST /v1/predict?explain=true``, ``?limt=5``), and any of them
    given twice."""

    async def check(request: Request) -> None:
        params = request.query_params
        unknown = sorted(set(params) - set(names))
        if unknown:
            takes = f"takes only {', '.join(names)}" if names else "takes none"
            raise APIError(
                422,
                "invalid_request",
                f"unknown query parameter(s) {', '.join(map(repr, unknown))[:300]}; "
                f"{request.url.path} {takes}{hint}",
            )
        for name in names:  # the last would win, silently: ?q=flu&q=fever searched for fever
            if len(params.getlist(name)) > 1:
                raise APIError(
                    422,
                    "invalid_request",
                    f"the query parameter {name!r} is given {len(params.getlist(name))} times; "
                    "give it once",
                )

    return Depends(check)


async def utf8_url(request: Request) -> None:
    """Refuse a URL whose %-escapes are not UTF-8 (``?q=%FF``): decoded, they became U+FFFD,
    and the route answered for a text the client never sent ("no entity has the label '�'")."""
    scope = request.scope
    for part, raw in (("path", scope.get("raw_path") or b""), ("query", scope["query_string"])):
        data = unquote_to_bytes(raw.replace(b"+", b" "))
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            byte = data[e.start : e.start + 1].hex().upper()
            raise APIError(
                400,
                "bad_request",
                f"the URL's {part} is not UTF-8 (once %-decoded, byte 0x{byte} at offset "
                f"{e.start}); percent-encode the UTF-8 bytes of the text (é is %C3%A9)",
            ) from None


UTF8_URL = Depends(utf8_url)
