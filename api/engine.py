"""The engine behind the service: one loaded bundle, its micro-batcher, and the live KG.

Routes never touch the model directly: `predict` queues texts for the batcher, and
`add_triples` grows the KG (the graph encoder is inductive, so new facts take effect without
retraining). Triples added at run time are kept under ``hot-triples/`` beside the bundle with
the features of the entities they bring (api/hot_triples.py) and replayed on start, so a
restart serves the same graph without embedding anything again.

A text that fails inside a batch fails alone: the batch is split in halves until the failing
texts stand alone, and only they get an error; the batch's other texts (other clients' too)
are answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import kg
from api.batching import MicroBatcher, QueueFull, ShuttingDown
from api.errors import APIError
from api.hot_triples import (
    FEATURES,
    embed_between_batches,
    hot_files,
    next_stem,
    persist,
    refuse_iri_objects,
    refuse_literal_relations,
    update_executor,
)
from api.metrics import Metrics
from api.settings import ServeSettings
from fusion.features import FeatureCache, encoder_key
from fusion.predict import Predictor
from fusion.prediction import Prediction
from fusion.resources import UnknownRelationError
from kg.errors import KGLoadError, KGReadOnlyError, OutputError
from kg.files import check_folder_writable, writing
from kg.formats import FORMATS, detect_format
from kg.graph import KnowledgeGraph
from kg.protocol import Graph
from nlp.anonymize import Anonymizer, Redacted, mention_spans

log = logging.getLogger("kgfuse.api")
Answer = Prediction | Exception  # one text's prediction, or why it has none
T = TypeVar("T")


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    explain: bool
    top_k_paths: int


def _writable(graph: Graph, hint: str) -> KnowledgeGraph:
    """The graph, if kgfuse may add triples to it (a triple store it only reads)."""
    compiled = graph.compiled
    if compiled is None:
        raise KGReadOnlyError(
            f"this model reads its KG from the triple store {graph.source}; {hint}"
        )
    return compiled


def _bundle_version(bundle: Path) -> str:
    digest = hashlib.sha256()
    for name in ("bundle.json", "model.safetensors"):
        digest.update((bundle / name).read_bytes())
    return digest.hexdigest()[:12]


def log_failure(what: str, error: Exception, log_texts: bool) -> None:
    """Log that ``what`` failed for one text. The exception's message may quote the text (a
    parser's error, say), so unless texts may be logged only its type and traceback frames are:
    the text itself stays out of the log."""
    if log_texts:
        log.error("%s failed for one text", what, exc_info=error)
        return
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error(
        "%s failed for one text: %s (message withheld: it may quote the text; --log-texts "
        "shows it)\nTraceback (most recent call last):\n%s",
        what,
        type(error).__qualname__,
        frames.rstrip(),
    )


def one_by_one(
    run: Callable[[list[str]], list[T]], texts: list[str], what: str, log_texts: bool
) -> list[T | Exception]:
    """``run(texts)``; when it raises, each half is tried again, so only the texts that fail on
    their own get their exception (logged) and the others get their result."""
    try:
        return list(run(texts))
    except Exception as e:
        if len(texts) <= 1:
            log_failure(what, e, log_texts)
            return [e] * len(texts)
    half = len(texts) // 2
    return one_by_one(run, texts[:half], what, log_texts) + one_by_one(
        run, texts[half:], what, log_texts
    )


def answer_each(
    predictor: Predictor, texts: list[str], explain: bool, top_k: int, log_texts: bool = False
) -> list[Answer]:
    """`Predictor.predict` of ``texts``; only the texts that fail on their own get their
    exception (logged) and the others are answered."""

    def run(part: list[str]) -> list[Prediction]:
        return list(predictor.predict(part, explain_paths=explain, top_k_paths=top_k))

    return one_by_one(run, texts, "prediction", log_texts)


@contextmanager
def _unwritable_as_503(folder: Path) -> Iterator[None]:
    """A hot-triples folder the server cannot write is the operator's to fix, not the
    client's: a 503 that says so, with nothing added."""
    try:
        yield
    except OutputError as e:
        raise APIError(
            503,
            "hot_triples_unwritable",
            f"the server cannot save added triples ({e}); nothing was added. The operator can "
            f"restart it with --hot-triples-dir set to a folder it may write to",
        ) from None


def _parse_body(body: bytes, ext: str, read: Callable[[Path], KnowledgeGraph]) -> KnowledgeGraph:
    """``read`` of a file holding a request body; errors name the "request body", never the
    server's temporary file."""
    with tempfile.TemporaryDirectory(prefix="kgfuse-triples-") as tmp:
        upload = Path(tmp) / f"body.{ext}"
        upload.write_bytes(body)
        try:
            return read(upload)
        except KGLoadError as e:
            reason = e.reason
            for name in (upload.as_uri(), str(upload), tmp):
                reason = reason.replace(name, "request body")
            raise KGLoadError(reason, "request body", e.line) from None


def _replay(predictor: Predictor, settings: ServeSettings) -> tuple[Predictor, FeatureCache]:
    """The predictor over its graph plus the persisted hot triples, their entities' features
    read from the cache (what it lacks is embedded and saved). Errors name the folder's file."""
    folder = settings.hot_triples
    files = hot_files(folder)
    cache = FeatureCache.load(folder / FEATURES, encoder_key(predictor.resources.text_encoder))
    if not files:
        return predictor, cache
    hint = f"{folder} holds hot triples: load them into the store, remove it"
    graph = _writable(predictor.resources.graph, hint)
    try:
        extended = kg.extend(graph, files)
        resources = predictor.resources.with_graph(extended, cache)
    except KGLoadError as e:
        raise KGLoadError(
            f"{e.reason}; this file holds triples once added over POST /v1/kg/triples: "
            "fix it or move it out of the folder",
            e.path,
            e.line,
        ) from e
    except UnknownRelationError as e:
        raise UnknownRelationError(
            f"the hot triples in {folder} cannot be served by this model: {e} (move the files "
            "that use these predicates out of the folder)"
        ) from e
    cache.save(folder / FEATURES, f"start-{time.time_ns()}")
    return Predictor(predictor.model, resources, predictor.meta), cache


class Engine:
    """A bundle ready to serve. Build with `Engine.load`; `start` inside the event loop."""

    def __init__(
        self,
        predictor: Predictor,
        settings: ServeSettings,
        metrics: Metrics,
        features: FeatureCache | None = None,
    ):
        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.version = _bundle_version(Path(settings.bundle))
        self.hot_files = hot_files(settings.hot_triples)
        self.features = features or FeatureCache(encoder_key(predictor.resources.text_encoder))
        self.batcher = MicroBatcher(
            self._run,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            queue_size=settings.queue_size,
            on_batch=metrics.observe_batch,
        )
        self._updates = update_executor()
        self.anonymizer = Anonymizer() if settings.anonymize else None
        self._redacting = 0  # requests waiting for (or in) redaction on the model thread
        self._kg_lock = asyncio.Lock()
        self.started_at = time.time()

    @classmethod
    def load(cls, settings: ServeSettings, metrics: Metrics) -> Engine:
        """Load the bundle and replay the hot triples persisted beside it.

        Raises:
            KGLoadError: a hot-triples file is broken (naming it and the line).
            UnknownRelationError: the hot triples use predicates the model lacks.
        """
        if settings.threads:
            torch.set_num_threads(settings.threads)
        predictor = Predictor.from_dir(settings.bundle, settings.kg_source)
        predictor, features = _replay(predictor, settings)
        return cls(predictor, settings, metrics, features)

    async def close(self, timeout: float) -> None:
        """Let queued predictions finish (up to ``timeout`` s), then stop the threads."""
        await self.batcher.close(timeout)
        await asyncio.to_thread(self._updates.shutdown, True)

    @property
    def graph(self) -> Graph:
        return self.predictor.resources.graph

    # ----- predictions -----
    def _run(self, requests: list[PredictRequest]) -> list[list[Answer]]:
        """Model thread: one prediction per (explain, top_k) group of the batch; a text that
        fails gets its exception in its place."""
        predictor = self.predictor  # a KG swap between batches never splits one
        groups: dict[tuple[bool, int], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.explain, r.top_k_paths), []).append(i)
        out: list[list[Answer]] = [[] for _ in requests]
        for (explain, top_k), members in groups.items():
            texts = [t for i in members for t in requests[i].texts]
            started = time.perf_counter()
            records = answer_each(predictor, texts, explain, top_k, self.settings.log_texts)
            self.metrics.model_seconds.observe(time.perf_counter() - started)
            at = 0
            for i in members:
                n = len(requests[i].texts)
                out[i] = records[at : at + n]
                at += n
        return out

    async def predict(self, request: PredictRequest) -> list[Answer]:
        """Queue the texts for the model; raises `QueueFull` / `ShuttingDown` at once. Each
        text's answer is its record, or the exception that it alone met."""
        result: list[Answer] = await self.batcher.submit(request, len(request.texts))
        return result

    async def redact(self, texts: list[str]) -> list[Redacted | Exception] | None:
        """With ``anonymize`` on, ``texts`` with their personal data redacted, the KG mentions
        the model's linker finds kept (on the model thread, between batches); else None. A
        text that cannot be redacted on its own gets the exception in its place (logged
        without its message, which may quote the raw text), and the others are redacted.

        Raises:
            ShuttingDown: the server is stopping.
            QueueFull: ``queue_size`` requests wait for redaction already (they wait on the
                model thread too, so they count against the same bound as predictions).
        """
        anonymizer = self.anonymizer
        if anonymizer is None:
            return None
        if self.batcher.closing:
            raise ShuttingDown("the service is shutting down")
        if self._redacting >= self.settings.queue_size:
            raise QueueFull(f"{self._redacting} requests are already waiting for redaction")

        def run(part: list[str]) -> list[Redacted]:
            links = self.predictor.resources.link(part)
            return anonymizer.redact(part, [mention_spans(s) for s in links])

        def redact() -> list[Redacted | Exception]:  # never the raw text in the log
            return one_by_one(run, texts, "anonymization", log_texts=False)

        self._redacting += 1
        try:
            result: list[Redacted | Exception] = await self.batcher.call(redact)
        finally:
            self._redacting -= 1
        return result

    # ----- hot triples -----
    async def add_triples(self, body: bytes, fmt: str) -> dict[str, Any]:
        """Add the triples in ``body`` (any loader format) to the live KG, all or nothing.

        Parsing and compiling run on a background thread, the embedding of new entity texts on
        the model thread in short slices between prediction batches, so predictions keep being
        answered over the old graph; the new graph is persisted before it is swapped in, so the
        file on disk and the graph served never disagree. One insert runs at a time.

        Raises:
            KGLoadError: the body is not valid triples (named "request body").
            APIError: 413, the triples add more than ``settings.max_new_entities`` entities;
                422, they give a literal object to a predicate the KG uses between entities,
                or an IRI object to a label, alias or description predicate.
            UnknownRelationError: they use a predicate the model was not trained with.
        """
        name = detect_format("request body", fmt)
        ext = FORMATS[name][0]
        async with self._kg_lock:
            old = self.predictor
            before = _writable(
                self.graph, "add triples to the store itself: the next prediction reads them"
            )
            loop = asyncio.get_running_loop()

            def on_model_thread(fn: Callable[[], Any]) -> Any:  # called from the update thread
                return asyncio.run_coroutine_threadsafe(self.batcher.call(fn), loop).result()

            embed = embed_between_batches(on_model_thread, old.resources.text_encoder.embed)
            new, saved = await loop.run_in_executor(
                self._updates, self._extend, old, before, body, ext, embed
            )
            if saved is not None:
                self.predictor = new
                self.hot_files.append(saved)
        graph = _writable(new.resources.graph, "")  # extended from `before`, which is one
        return {
            "added_triples": graph.num_triples - before.num_triples,
            "new_entities": graph.num_entities - before.num_entities,
            "kg": self.kg_stats(),
            "saved_as": "" if saved is None else saved.name,
        }

    def _extend(
        self,
        old: Predictor,
        before: KnowledgeGraph,
        body: bytes,
        ext: str,
        embed: Callable[[list[str]], np.ndarray],
    ) -> tuple[Predictor, Path | None]:
        """Update thread: the predictor over ``before`` plus ``body`` (new entity texts embedded
        by ``embed``), and the file that now holds ``body``; ``old`` and None when the body
        changes nothing (every fact in it is in the KG already: a retried request, say), so a
        retry adds no file for each restart to replay."""
        graph = _parse_body(body, ext, lambda path: kg.extend(before, path))
        refuse_iri_objects(before, graph)
        if len(graph.attribute_values) > len(before.attribute_values):  # literals among them
            alone = _parse_body(body, ext, lambda path: kg.load(path, config=before.config))
            refuse_literal_relations(before, alone)
        if graph.fingerprint == before.fingerprint:
            return old, None
        added = graph.num_entities - before.num_entities
        limit = self.settings.max_new_entities
        if added > limit:
            raise APIError(
                413,
                "too_many_entities",
                f"the triples add {added} new entities; at most {limit} may be added in one "
                "request (--max-new-entities); split them over several requests",
            )
        folder = self.settings.hot_triples
        with _unwritable_as_503(folder):
            check_folder_writable(folder)  # before the new entities are embedded
            resources = old.resources.with_graph(graph, self.features, embed)
            # the features first: they are a cache, harmless if the triples then fail to save,
            # while triples saved for an insert that failed would be served after a restart
            stem = next_stem(folder)
            with writing(folder / FEATURES / f"{stem}.safetensors"):
                self.features.save(folder / FEATURES, stem)
            saved = persist(folder, body, ext)
        return Predictor(old.model, resources, old.meta), saved

    # ----- descriptions -----
    def kg_stats(self) -> dict[str, Any]:
        stats = self.graph.stats()
        stats["fingerprint"] = self.graph.fingerprint
        stats["hot_triple_files"] = len(self.hot_files)
        return stats

    def describe(self) -> dict[str, Any]:
        meta = self.predictor.meta
        return {
            "version": self.version,
            "labels": self.predictor.labels,
            "mode": meta["config"]["model"]["mode"],
            "metrics": meta.get("metrics", {}),
            "training": meta.get("training", {}),
            "versions": meta.get("versions", {}),
            "encoder": meta.get("encoder_id"),
            "kg": self.kg_stats(),
            "limits": self.settings.public(),
        }
