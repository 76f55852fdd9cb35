"""The dependency that hands the engine to routes (tests swap it with dependency_overrides), and
the one that refuses query parameters a route does not take."""

from __future__ import annotations

from typing import Annotated, Any

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
    would ignore silently (``POST /v1/predict?explain=true``, ``?limt=5``)."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            takes = f"takes only {', '.join(names)}" if names else "takes none"
            raise APIError(
                422,
                "invalid_request",
                f"unknown query parameter(s) {', '.join(map(repr, unknown))[:300]}; "
                f"{request.url.path} {takes}{hint}",
            )

    return Depends(check)
