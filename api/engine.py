"""The engine behind the service: one loaded bundle, its micro-batcher, and the live KG.

Routes never touch the model directly: `predict` queues texts for the batcher, and
`add_triples` grows the KG (the graph encoder is inductive, so new facts take effect without
retraining). Triples added at run time are kept as files under ``hot-triples/`` beside the
bundle and replayed on start, so a restart serves the same graph.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import kg
from api.batching import MicroBatcher
from api.metrics import Metrics
from api.settings import ServeSettings
from fusion.predict import Predictor
from kg.errors import KGReadOnlyError
from kg.formats import FORMATS, detect_format
from kg.graph import KnowledgeGraph
from kg.store_graph import StoreGraph


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    explain: bool
    top_k_paths: int


def _writable(graph: KnowledgeGraph | StoreGraph, hint: str) -> KnowledgeGraph:
    """The graph, if kgfuse may add triples to it (a triple store it only reads)."""
    if isinstance(graph, StoreGraph):
        raise KGReadOnlyError(
            f"this model reads its KG from the triple store {graph.source}; {hint}"
        )
    return graph


def _hot_files(folder: Path) -> list[Path]:
    """Persisted hot-triple files in the order they were added (``000001.ttl``, ...)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name[:6].isdigit())


def _bundle_version(bundle: Path) -> str:
    digest = hashlib.sha256()
    for name in ("bundle.json", "model.safetensors"):
        digest.update((bundle / name).read_bytes())
    return digest.hexdigest()[:12]


class Engine:
    """A bundle ready to serve. Build with `Engine.load`; `start` inside the event loop."""

    def __init__(self, predictor: Predictor, settings: ServeSettings, metrics: Metrics):
        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics
        self.version = _bundle_version(Path(settings.bundle))
        self.hot_files = _hot_files(settings.hot_triples)
        self.batcher = MicroBatcher(
            self._run,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            queue_size=settings.queue_size,
            on_batch=metrics.observe_batch,
        )
        self._kg_lock = asyncio.Lock()
        self.started_at = time.time()

    @classmethod
    def load(cls, settings: ServeSettings, metrics: Metrics) -> Engine:
        """Load the bundle and replay the hot triples persisted beside it."""
        if settings.threads:
            torch.set_num_threads(settings.threads)
        predictor = Predictor.from_dir(settings.bundle, settings.kg_source)
        files = _hot_files(settings.hot_triples)
        if files:
            hint = f"{settings.hot_triples} holds hot triples: load them into the store, remove it"
            graph = _writable(predictor.resources.graph, hint)
            predictor = predictor.with_graph(kg.extend(graph, files))
        return cls(predictor, settings, metrics)

    @property
    def graph(self) -> KnowledgeGraph | StoreGraph:
        return self.predictor.resources.graph

    # ----- predictions -----
    def _run(self, requests: list[PredictRequest]) -> list[list[dict[str, Any]]]:
        """Model thread: one `Predictor.predict` call per (explain, top_k) group of the batch."""
        predictor = self.predictor  # a KG swap between batches never splits one
        groups: dict[tuple[bool, int], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.explain, r.top_k_paths), []).append(i)
        out: list[list[dict[str, Any]]] = [[] for _ in requests]
        for (explain, top_k), members in groups.items():
            texts = [t for i in members for t in requests[i].texts]
            started = time.perf_counter()
            records = predictor.predict(texts, explain_paths=explain, top_k_paths=top_k)
            self.metrics.model_seconds.observe(time.perf_counter() - started)
            at = 0
            for i in members:
                n = len(requests[i].texts)
                out[i] = records[at : at + n]
                at += n
        return out

    async def predict(self, request: PredictRequest) -> list[dict[str, Any]]:
        """Queue the texts for the model; raises `QueueFull` / `ShuttingDown` at once."""
        result: list[dict[str, Any]] = await self.batcher.submit(request, len(request.texts))
        return result

    # ----- hot triples -----
    async def add_triples(self, body: bytes, fmt: str) -> dict[str, Any]:
        """Add the triples in ``body`` (any loader format) to the live KG, all or nothing.

        Parsing and compiling happen off the event loop; the new graph is persisted before it
        is swapped in, so the file on disk and the graph served never disagree.
        """
        name = detect_format("request body", fmt)
        ext = FORMATS[name][0]
        async with self._kg_lock:
            old = self.predictor
            before = _writable(
                self.graph, "add triples to the store itself: the next prediction reads them"
            )
            with tempfile.TemporaryDirectory(prefix="kgfuse-triples-") as tmp:
                upload = Path(tmp) / f"upload.{ext}"
                upload.write_bytes(body)
                graph = await asyncio.to_thread(kg.extend, before, upload)
            # the tokenizer embeds new entities: run it on the model thread, between batches
            new = await self.batcher.call(lambda: old.with_graph(graph))
            saved = await asyncio.to_thread(self._persist, body, ext)
            self.predictor = new
            self.hot_files.append(saved)
        return {
            "added_triples": graph.num_triples - before.num_triples,
            "new_entities": graph.num_entities - before.num_entities,
            "kg": self.kg_stats(),
            "saved_as": saved.name,
        }

    def _persist(self, body: bytes, ext: str) -> Path:
        """Write ``body`` as the next ``NNNNNN.ext`` under the hot-triples folder: fsync'd, then
        claimed with a hard link, which fails if the name is taken, so replicas sharing the
        folder never overwrite each other's files."""
        folder = self.settings.hot_triples
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{os.getpid()}-{time.time_ns()}.partial"
        with partial.open("wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        try:
            number = len(_hot_files(folder)) + 1
            while True:
                target = folder / f"{number:06d}.{ext}"
                try:
                    os.link(partial, target)
                    return target
                except FileExistsError:
                    number += 1
        finally:
            partial.unlink()

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
