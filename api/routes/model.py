"""``GET /v1/model``: what is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import ReadAccess
from api.deps import EngineDep
from api.schemas import ERROR_RESPONSES, ModelResponse

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[ReadAccess])


@router.get("/model", response_model=ModelResponse, responses=ERROR_RESPONSES)
async def model(engine: EngineDep) -> dict[str, Any]:
    """Labels, evaluation metrics, package versions, KG statistics and the server's limits."""
    return engine.describe()
