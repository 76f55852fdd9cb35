"""Operations: ``/health`` (liveness), ``/ready`` (model loaded), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.errors import APIError
from api.schemas import Health

router = APIRouter(tags=["ops"])


# HEAD is answered as GET by api.app.HeadAsGet, here as on every GET route.
@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@router.get("/ready", response_model=Health, responses={503: {"description": "not ready"}})
async def ready(request: Request) -> dict[str, str]:
    """The model is loaded and the server takes requests (readiness)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None or engine.batcher.closing:
        raise APIError(503, "not_ready", "the model is not loaded (or the server is stopping)")
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: request counts and latencies, batch sizes, queue depth, model time."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
