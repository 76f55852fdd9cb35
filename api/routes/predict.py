"""``POST /v1/predict``: labels, probabilities, linked entities and supporting paths."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter

from api.auth import ReadAccess
from api.batching import QueueFull, ShuttingDown
from api.deps import EngineDep
from api.engine import Answer, PredictRequest
from api.errors import APIError, describe_error
from api.schemas import ERROR_RESPONSES, ErrorDetail, PredictBody, PredictResponse, TextAnswer
from fusion.prediction import Prediction
from nlp.texts import text_problem

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
        problem = text_problem(text)
        if problem:
            raise APIError(422, f"{problem.kind}_text", f"texts[{i}] {problem.message}")
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
    started = time.perf_counter()
    redacted = await engine.redact(body.texts)  # before anything reads, logs or keeps a text
    texts = body.texts if redacted is None else [r.text for r in redacted]
    if engine.settings.log_texts:
        log.info("predict texts=%r", texts)
    request = PredictRequest(texts, body.explain, body.top_k_paths)
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
    predictions = _answered(request.texts, records)
    total = (time.perf_counter() - started) * 1e3
    model = next((a.timings_ms for a in records if isinstance(a, Prediction)), {})
    return {
        "model_version": engine.version,
        "kg_fingerprint": engine.graph.fingerprint,
        "predictions": predictions,
        "anonymized": None if redacted is None else [{"redactions": r.counts} for r in redacted],
        "timings_ms": {
            "queue": round(max(0.0, total - sum(model.values())), 2),
            "total": round(total, 2),
        },
    }


def _answered(texts: list[str], answers: list[Answer]) -> list[Prediction]:
    """The predictions of the texts; a text that failed alone gets a `TextAnswer` with its
    ``error`` in their place. When every text failed, the request fails with the first one's
    error."""
    failed = [a for a in answers if isinstance(a, Exception)]
    if failed and len(failed) == len(answers):
        raise failed[0]
    out: list[Prediction] = []
    for text, answer in zip(texts, answers, strict=True):
        if isinstance(answer, Exception):
            status, code, message = describe_error(answer)
            error = ErrorDetail(status=status, code=code, message=message)
            out.append(TextAnswer(text=text, error=error))
        else:
            out.append(answer)
    return out
