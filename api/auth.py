"""API keys with two scopes, ``read`` and ``admin``, checked in constant time.

A key comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. No key gets 401, a key of
the wrong scope 403. Every configured key is compared (`hmac.compare_digest`) whatever matches
first, so the time taken does not tell how much of a key was right or which key it was.
With no read key configured, reading is open; with no admin key configured, admin routes are
refused: adding triples always needs an admin key.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import APIError
from api.settings import ApiKeys

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer KEY`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def _matches(given: str, keys: tuple[str, ...]) -> bool:
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode(), key.encode())
    return found


def scope_of(given: str | None, keys: ApiKeys) -> str | None:
    """``"admin"``, ``"read"`` or None (unknown key) for the key a request carries."""
    if given is None:
        return None
    admin, read = _matches(given, keys.admin), _matches(given, keys.read)
    return "admin" if admin else "read" if read else None


def _given_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> str | None:
    return bearer.credentials if bearer is not None else header


def _keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.settings.keys
    return keys


def require_read(request: Request, key: Annotated[str | None, Depends(_given_key)]) -> None:
    keys = _keys(request)
    if keys.reading_open:
        return
    if key is None:
        raise _missing()
    if scope_of(key, keys) is None:
        raise _wrong()


def require_admin(request: Request, key: Annotated[str | None, Depends(_given_key)]) -> None:
    keys = _keys(request)
    if not keys.admin:
        raise APIError(
            403,
            "admin_disabled",
            "no admin key is configured, so the KG cannot be changed over HTTP; "
            "start the server with KGFUSE_ADMIN_KEYS set (or an 'admin KEY' line in the key file)",
        )
    if key is None:
        raise _missing()
    scope = scope_of(key, keys)
    if scope is None:
        raise _wrong()
    if scope != "admin":
        raise APIError(
            403, "forbidden", "this route needs an admin key; the key given may only read"
        )


def _missing() -> APIError:
    return APIError(
        401,
        "unauthorized",
        "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        {"WWW-Authenticate": "Bearer"},
    )


def _wrong() -> APIError:
    return APIError(401, "unauthorized", "the API key is not valid", {"WWW-Authenticate": "Bearer"})


ReadAccess = Depends(require_read)
AdminAccess = Depends(require_admin)
