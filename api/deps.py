"""The one dependency that hands the engine to routes (tests swap it with dependency_overrides)."""

from __future__ import annotations

from typing import Annotated

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
