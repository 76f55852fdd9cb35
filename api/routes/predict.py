"""``POST /v1/predict``: labels, probabilities, linked entities and supporting paths."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter

from api.auth import ReadAccess
from api.batching import QueueFull, ShuttingDown
from api.deps import EngineDep, query_takes
from api.engine import Answer, PredictRequest
from api.errors import APIError, describe_error
from api.schemas import ERROR_RESPONSES, ErrorDetail, PredictBody, PredictResponse, TextAnswer
from fusion.prediction import Prediction
from nlp.anonymize import Redacted
from nlp.texts import text_problem

router = APIRouter(prefix="/v1", tags=["predict"], dependencies=[ReadAccess])
log = logging.getLogger("kgfuse.api")
T = TypeVar("T")


def _check_request(body: PredictBody, engine: EngineDep) -> None:
    """Refuse a request whose shape breaks a limit (too many texts, too many paths)."""
    limits = engine.settings
    if len(body.texts) > limits.max_texts:
        raise APIError(
            422,
            "too_many_texts",
            f"{len(body.texts)} texts in one request; send at most {limits.max_texts} "
            "(split the list over several requests)",
        )
    # only when asked for: the default (3) is lowered to the limit by `predict`
    if "top_k_paths" in body.model_fields_set and body.top_k_paths > limits.max_top_k_paths:
        raise APIError(
            422,
            "too_many_paths",
            f"top_k_paths is {body.top_k_paths}; the limit is {limits.max_top_k_paths}",
        )


def _text_error(i: int, text: str, max_chars: int) -> APIError | None:
    """Why ``texts[i]`` cannot be classified (too long, not valid Unicode, empty), or None."""
    if len(text) > max_chars:
        return APIError(
            422,
            "text_too_long",
            f"texts[{i}] has {len(text)} characters; the limit is {max_chars} "
            "(shorten or split it)",
        )
    problem = text_problem(text)
    if problem:
        return APIError(422, problem.code, f"texts[{i}] {problem.message}")
    return None


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    dependencies=[query_takes(hint="; send texts, explain and top_k_paths in the JSON body")],
)
async def predict(body: PredictBody, engine: EngineDep) -> dict[str, object]:
    """Classify texts. With `explain`, each prediction carries its supporting graph paths,
    every hop a triple of the KG. A text that cannot be classified (empty, too long, not valid
    Unicode) gets its own error and the others are answered."""
    _check_request(body, engine)
    refused = {
        i: error
        for i, text in enumerate(body.texts)
        if (error := _text_error(i, text, engine.settings.max_chars)) is not None
    }
    if len(refused) == len(body.texts):
        raise refused[0]
    started = time.perf_counter()
    deadline = started + engine.settings.request_timeout_s  # redaction and model together
    kept = [i for i in range(len(body.texts)) if i not in refused]
    # before anything reads, logs or keeps a text
    outcomes = await _queued(engine, engine.redact([body.texts[i] for i in kept]), deadline)
    redacted = None
    if outcomes is None:
        texts = [body.texts[i] for i in kept]
    else:  # a text that could not be redacted is refused: it must not go on unredacted
        for i, outcome in zip(kept, outcomes, strict=True):
            if isinstance(outcome, Exception):
                refused[i] = _failed(outcome)
        if len(refused) == len(body.texts):
            raise refused[min(refused)]
        redacted = [r for r in outcomes if not isinstance(r, Exception)]
        texts = [r.text for r in redacted]
    if engine.settings.log_texts:
        log.info("predict texts=%r", texts)
    top_k = min(body.top_k_paths, engine.settings.max_top_k_paths)
    records = await _queued(
        engine, engine.predict(PredictRequest(texts, body.explain, top_k)), deadline
    )
    n = len(body.texts)
    shown = _in_place({i: _echo(body.texts[i], redacted is not None) for i in refused}, texts, n)
    answers = _in_place(dict[int, Answer](refused), records, n)
    total = (time.perf_counter() - started) * 1e3
    model = next((a.timings_ms for a in records if isinstance(a, Prediction)), {})
    return {
        "model_version": engine.version,
        "kg_fingerprint": engine.graph.fingerprint,
        "predictions": _answered(shown, answers),
        "anonymized": None if redacted is None else _redactions(redacted, refused, n),
        "timings_ms": {
            "queue": round(max(0.0, total - sum(model.values())), 2),
            "total": round(total, 2),
        },
    }


def _in_place(refused: dict[int, T], rest: list[T], n: int) -> list[T]:
    """``n`` items: ``refused[i]`` at each refused index ``i``, ``rest`` in order elsewhere."""
    others = iter(rest)
    return [refused[i] if i in refused else next(others) for i in range(n)]


def _redactions(redacted: list[Redacted], refused: dict[int, APIError], n: int) -> list[Any]:
    """The ``anonymized`` entries of ``n`` texts: a refused text had nothing redacted."""
    none: dict[str, int] = {}
    counts = _in_place({i: none for i in refused}, [r.counts for r in redacted], n)
    return [{"redactions": c} for c in counts]


def _echo(text: str, anonymized: bool) -> str:
    """What a refused text's answer shows as its text: nothing when the server anonymizes (it
    was never redacted), else the text with what JSON cannot carry (lone surrogates) as '?'."""
    return "" if anonymized else text.encode("utf-8", "replace").decode("utf-8")


def _failed(error: Exception) -> APIError:
    """The error a text gets in its place when the server failed on it alone."""
    return APIError(*describe_error(error))


async def _queued(engine: EngineDep, work: Awaitable[T], deadline: float) -> T:
    """What ``work`` on the model thread gives, by ``deadline`` (`time.perf_counter`); a full
    queue, a stopping server or no answer in time are a 503 or 504."""
    try:
        return await asyncio.wait_for(work, timeout=max(0.0, deadline - time.perf_counter()))
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
