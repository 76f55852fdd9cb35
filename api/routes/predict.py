"""``POST /v1/predict``: labels, probabilities, linked entities and supporting paths."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter

from api.auth import ReadAccess
from api.batching import QueueFull, ShuttingDown
from api.deps import EngineDep
from api.engine import PredictRequest
from api.errors import APIError
from api.schemas import ERROR_RESPONSES, PredictBody, PredictResponse

router = APIRouter(prefix="/v1", tags=["predict"], dependencies=[ReadAccess])
log = logging.getLogger("kgfuse.api")


def _check_limits(body: PredictBody, engine: EngineDep) -> None:
    limits = engine.settings
    if len(body.texts) > limits.max_texts:
        raise APIError(
            422,
            "too_many_texts",
            f"{len(body.texts)} texts in one request; send at most {limits.max_texts} "
            "(split the list over several requests)",
        )
    for i, text in enumerate(body.texts):
        if len(text) > limits.max_chars:
            raise APIError(
                422,
                "text_too_long",
                f"texts[{i}] has {len(text)} characters; the limit is {limits.max_chars} "
                "(shorten or split it)",
            )
        if not text.strip():
            raise APIError(422, "empty_text", f"texts[{i}] is empty; send text to classify")
    if body.top_k_paths > limits.max_top_k_paths:
        raise APIError(
            422,
            "too_many_paths",
            f"top_k_paths is {body.top_k_paths}; the limit is {limits.max_top_k_paths}",
        )


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
async def predict(body: PredictBody, engine: EngineDep) -> dict[str, object]:
    """Classify texts. With `explain`, each prediction carries its supporting graph paths,
    every hop a triple of the KG."""
    _check_limits(body, engine)
    if engine.settings.log_texts:
        log.info("predict texts=%r", body.texts)
    started = time.perf_counter()
    request = PredictRequest(body.texts, body.explain, body.top_k_paths)
    try:
        records = await asyncio.wait_for(
            engine.predict(request), timeout=engine.settings.request_timeout_s
        )
    except QueueFull:
        engine.metrics.rejected.labels("queue_full").inc()
        raise APIError(
            503, "overloaded", "too many requests are waiting; retry shortly", {"Retry-After": "1"}
        ) from None
    except ShuttingDown:
        engine.metrics.rejected.labels("shutting_down").inc()
        raise APIError(
            503, "shutting_down", "the server is shutting down", {"Retry-After": "5"}
        ) from None
    except TimeoutError:
        engine.metrics.rejected.labels("timeout").inc()
        raise APIError(
            504,
            "timeout",
            f"no answer within {engine.settings.request_timeout_s:g} s; "
            "retry with fewer texts or without explain",
        ) from None
    total = (time.perf_counter() - started) * 1e3
    model = records[0]["timings_ms"] if records else {}
    return {
        "model_version": engine.version,
        "kg_fingerprint": engine.graph.fingerprint,
        "predictions": records,
        "timings_ms": {
            "queue": round(max(0.0, total - sum(model.values())), 2),
            "total": round(total, 2),
        },
    }
