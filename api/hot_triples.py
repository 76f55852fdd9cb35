"""Triples added at run time (``POST /v1/kg/triples``): persisted, replayed, embedded once.

The hot-triples folder (default ``BUNDLE/hot-triples``) holds:

- ``000001.ttl``, ``000002.nt``, ...: each accepted request body, numbered in the order added;
  a restart replays them all.
- ``features/*.safetensors``: the feature vectors of the entity texts those triples brought,
  keyed by the SHA-256 of the text and tagged with the encoder that made them. A restart looks
  every text up here first, so it embeds nothing again; a vector of another encoder is never
  used. A file here is only a cache: one that cannot be read is skipped with a warning.

Inserts parse, compile and build the new graph's resources on one background thread
(`update_executor`); the embedding of new entity texts runs on the model thread in slices of
about `EMBED_SLICE_S` between prediction batches (`embed_between_batches`), so the model thread
keeps answering predictions from the old graph until the new one is swapped in. (A second
thread embedding at once would share the GIL, the cores and the tokenizer with predictions; a
lower-priority one stalls everyone when it is descheduled holding the GIL.)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError

from fusion.resources import Resources

FEATURES = "features"
log = logging.getLogger("kgfuse.api")


def hot_files(folder: Path) -> list[Path]:
    """Persisted hot-triple files in the order they were added (``000001.ttl``, ...)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name[:6].isdigit())


def _write_new(folder: Path, data: bytes, names: list[str]) -> Path:
    """Write ``data`` fsync'd under ``folder``, then claim the first free one of ``names`` with
    a hard link (which fails if the name is taken, so replicas sharing the folder never
    overwrite each other's files). Returns the file written."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{os.getpid()}-{threading.get_native_id()}-{time.time_ns()}.partial"
    with partial.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        for name in names:
            with contextlib.suppress(FileExistsError):
                os.link(partial, folder / name)
                return folder / name
        raise AssertionError("every candidate name is taken")  # pragma: no cover
    finally:
        partial.unlink()


def persist(folder: Path, body: bytes, ext: str) -> Path:
    """Save a request body as the next ``NNNNNN.ext`` of ``folder``."""
    first = len(hot_files(folder)) + 1
    return _write_new(folder, body, [f"{n:06d}.{ext}" for n in range(first, first + 10_000)])


def encoder_key(resources: Resources) -> str:
    """Which encoder made a feature vector: its folder's fingerprint and its pooling."""
    from fusion.encoder import encoder_id

    tokenizer = resources.tokenizer
    return f"{encoder_id(tokenizer.path)}-{tokenizer.config.pooling}"


class FeatureCache:
    """Feature vectors by entity text (keyed by SHA-256), for one encoder; remembers the vectors
    added since the last `save`. Passed to `Resources.with_graph` as its ``cache``."""

    def __init__(self, encoder: str):
        self.encoder = encoder
        self._vectors: dict[bytes, np.ndarray] = {}
        self._fresh: dict[bytes, np.ndarray] = {}

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self._key(text) in self._vectors

    def __getitem__(self, text: str) -> np.ndarray:
        return self._vectors[self._key(text)]

    def __setitem__(self, text: str, vector: np.ndarray) -> None:
        key = self._key(text)
        self._vectors[key] = self._fresh[key] = np.asarray(vector, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._vectors)

    @classmethod
    def load(cls, folder: Path, encoder: str) -> FeatureCache:
        """Every readable cache file of ``folder`` made by ``encoder``."""
        from safetensors import safe_open

        cache = cls(encoder)
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                with safe_open(str(path), "np") as f:
                    if (f.metadata() or {}).get("encoder") != encoder:
                        continue
                    digests, vectors = f.get_tensor("digests"), f.get_tensor("features")
            except (SafetensorError, OSError, KeyError, ValueError) as e:
                log.warning("skipping the feature cache file %s (%s); its texts are re-embedded", path, e)  # fmt: skip
                continue
            for digest, vector in zip(digests, vectors, strict=True):
                cache._vectors[digest.tobytes()] = vector
        return cache

    def save(self, folder: Path, stem: str) -> Path | None:
        """Write the vectors added since the last save as ``folder/<stem>.safetensors`` (another
        free name if that one is taken); None when there were none."""
        from safetensors.numpy import save

        if not self._fresh:
            return None
        digests = np.frombuffer(b"".join(self._fresh), dtype=np.uint8).reshape(-1, 32)
        data = save(
            {"digests": digests, "features": np.stack(list(self._fresh.values()))},
            metadata={"encoder": self.encoder},
        )
        names = [f"{stem}.safetensors"] + [f"{stem}-{n}.safetensors" for n in range(1, 1000)]
        path = _write_new(folder, data, names)
        self._fresh.clear()
        return path


def update_executor() -> ThreadPoolExecutor:
    """The one background thread that parses hot triples and builds the new graph's resources."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="kgfuse-kg-update")


EMBED_SLICE_S = 0.02  # model-thread time per slice of entity texts: the most a prediction waits
MAX_SLICE = 256


def embed_between_batches(
    run_on_model_thread: Callable[[Callable[[], Any]], Any],
    embed: Callable[[list[str]], np.ndarray],
) -> Callable[[list[str]], np.ndarray]:
    """An ``embed`` for a background thread: each slice of texts runs through
    ``run_on_model_thread`` (which blocks until done), sized to take about ``EMBED_SLICE_S``,
    so prediction batches queued meanwhile run between slices."""

    def timed(texts: list[str]) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        return embed(texts), time.perf_counter() - started

    def sliced(texts: list[str]) -> np.ndarray:
        parts, size, at = [], 1, 0
        while at < len(texts):
            part = texts[at : at + size]
            vectors, seconds = run_on_model_thread(functools.partial(timed, part))
            parts.append(vectors)
            at += len(part)
            size = min(MAX_SLICE, max(1, int(len(part) * EMBED_SLICE_S / max(seconds, 1e-4))))
        return np.concatenate(parts) if parts else embed([])

    return sliced
