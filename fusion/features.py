"""Node features: an entity's text embedded by the frozen base encoder when a subgraph first
touches it, and kept by the content it was made from.

No per-entity embedding table is learned: an entity unseen in training still gets a meaningful
vector from its label and description. Nothing is embedded ahead of time, so a KG of a million
entities costs only the entities that training, validation and prediction reach.

Every vector is keyed by the SHA-256 of the entity's text; one `FeatureTable` holds them for
one encoder. A `NodeFeatures` is one graph's view of a table: it remembers which row each of
its entity ids resolved to. A changed KG gets a new view over the same table, so only entities
whose text changed are embedded again; `FeatureCache` keeps vectors on disk between runs
(``run/cache/node-features/``) and between service restarts (hot triples).

    features = NodeFeatures(graph, FeatureTable(encoder.hidden_size, encoder.embed))
    x = features.rows(subgraph.n_id)        # float32 [nodes, hidden], embedded on first touch
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from fusion.encoder import TextEncoder, encoder_id
from kg.protocol import Graph

log = logging.getLogger(__name__)

# Vectors a serving table keeps beyond the bundle's, for entities first met while serving:
# 50k x 384 float32 is 77 MB. When full, those extras are dropped (the bundle's stay).
SERVE_EXTRA_VECTORS = 50_000
EMBED_BATCH = 64


def encoder_key(encoder: TextEncoder) -> str:
    """Which encoder made a feature vector: its folder's fingerprint and its pooling."""
    return f"{encoder_id(encoder.path)}-{encoder.config.pooling}"


def text_key(text: str) -> bytes:
    """The 32-byte key of an entity text's vector."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class VectorCache(Protocol):
    """Feature vectors by entity text, consulted before embedding (a dict will do)."""

    def __contains__(self, text: object, /) -> bool: ...
    def __getitem__(self, text: str, /) -> np.ndarray: ...
    def __setitem__(self, text: str, vector: np.ndarray, /) -> None: ...


class FeatureTable:
    """Vectors by content key, for one encoder; shared by the `NodeFeatures` of every graph.

    Args:
        dim: vector size (the encoder's hidden size).
        embed: texts -> float32 [len(texts), dim], L2-normalized (`TextEncoder.embed`).
        pinned: (digests uint8 [n, 32], vectors float32 [n, dim]) known up front (a bundle's);
            they are never dropped.
        extra_limit: at most about this many vectors beyond ``pinned`` (None: no limit). A
            lookup that finds more drops those extras first (the service's bounded cache).
        cache: looked up before embedding, and given every vector embedded here.

    Thread-safe: ``lock`` guards every change; embedding runs outside it.
    """

    def __init__(
        self,
        dim: int,
        embed: Callable[[list[str]], np.ndarray],
        pinned: tuple[np.ndarray, np.ndarray] | None = None,
        extra_limit: int | None = None,
        cache: VectorCache | None = None,
    ):
        self.dim = dim
        self.embed = embed
        self.extra_limit = extra_limit
        self.cache = cache
        self.lock = threading.RLock()
        self.keys: dict[bytes, int] = {}
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.size = 0
        self.generation = 0  # bumped whenever rows are dropped: views then forget their rows
        if pinned is not None:
            digests, vectors = pinned
            if vectors.shape[1:] != (dim,) or len(digests) != len(vectors):
                raise ValueError(f"pinned vectors of shape {vectors.shape}, expected [n, {dim}]")
            self.append([d.tobytes() for d in digests], np.asarray(vectors, dtype=np.float32))
        self.pinned = self.size

    def append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Add vectors under keys the table lacks. Call with ``lock`` held."""
        need = self.size + len(keys)
        if need > len(self.matrix):
            grown = np.zeros((max(need, 2 * len(self.matrix), 256), self.dim), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        self.matrix[self.size : need] = vectors
        for i, key in enumerate(keys):
            self.keys[key] = self.size + i
        self.size = need

    def trim(self) -> None:
        """Drop the vectors beyond ``pinned`` if there are more than ``extra_limit``. Call with
        ``lock`` held, before looking rows up."""
        if self.extra_limit is None or self.size <= self.pinned + self.extra_limit:
            return
        self.keys = {k: r for k, r in self.keys.items() if r < self.pinned}
        self.size = self.pinned
        self.matrix = self.matrix[: max(self.pinned, 256)].copy()
        self.generation += 1
        log.info(
            "node features: dropped the vectors met while serving (limit %s)", self.extra_limit
        )

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(digests uint8 [n, 32], vectors float32 [n, dim]) of every vector held."""
        with self.lock:  # keys are held in row order: rows 0..size-1, one key each
            digests = np.frombuffer(b"".join(self.keys), dtype=np.uint8).reshape(-1, 32)
            return digests.copy(), self.matrix[: self.size].copy()


class NodeFeatures:
    """One graph's node features: `rows` embeds an entity's text the first time it is asked for.

    Args:
        graph: entity ids are this graph's (a StoreGraph may grow: ids it numbers
            later are covered too).
        table: the vectors, shared with other graphs' views (`on_graph`).
    """

    def __init__(self, graph: Graph, table: FeatureTable):
        self.graph = graph
        self.table = table
        self._rows = np.full(0, -1, dtype=np.int64)  # entity id -> table row; -1: not resolved
        self._generation = table.generation

    @property
    def dim(self) -> int:
        return self.table.dim

    def __deepcopy__(self, memo: dict[int, object]) -> NodeFeatures:
        """A model copy (``quantize_dynamic``, a best-epoch snapshot) shares these features:
        they are a cache over the graph, not weights."""
        return self

    def on_graph(self, graph: Graph) -> NodeFeatures:
        """The same vectors seen from ``graph`` (e.g. the KG plus hot triples): an entity whose
        text is unchanged reuses its vector."""
        return NodeFeatures(graph, self.table)

    def rows(self, ids: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """float32 [len(ids), dim]: the vector of each entity id, embedded when first met."""
        return torch.from_numpy(self._resolve(np.asarray(ids, dtype=np.int64).reshape(-1)))

    def cover(
        self,
        ids: Sequence[int] | np.ndarray,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        cache: VectorCache | None = None,
    ) -> None:
        """Have these entities' vectors now (e.g. the entities a hot update adds), embedding
        with ``embed`` (default: the table's) and looking in ``cache`` (default: the table's)
        first; vectors embedded here go to ``cache`` too."""
        self._resolve(np.asarray(ids, dtype=np.int64).reshape(-1), embed, cache)

    def _resolve(
        self,
        index: np.ndarray,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        cache: VectorCache | None = None,
    ) -> np.ndarray:
        table = self.table
        cache = cache if cache is not None else table.cache
        with table.lock:
            table.trim()
        while True:
            with table.lock:
                need = self._unresolved(index)
                if not need.size:
                    return table.matrix[self._rows[index]]
                todo: dict[bytes, str] = {}
                for e in need.tolist():
                    text = self.graph.text(e)
                    key = text_key(text)
                    row = table.keys.get(key)
                    if row is not None:
                        self._rows[e] = row
                    elif cache is not None and text in cache:
                        table.append([key], cache[text][None])
                        self._rows[e] = table.keys[key]
                    else:
                        todo[key] = text
            if not todo:
                continue
            missing = sorted(todo.items(), key=lambda kt: len(kt[1]))  # similar lengths pad less
            vectors = (embed or table.embed)([t for _, t in missing]).astype(np.float32)
            with table.lock:
                fresh = [i for i, (k, _) in enumerate(missing) if k not in table.keys]
                table.append([missing[i][0] for i in fresh], vectors[fresh])
            if cache is not None:
                for (_, text), vector in zip(missing, vectors, strict=True):
                    cache[text] = vector

    def _unresolved(self, index: np.ndarray) -> np.ndarray:
        """The distinct ids of ``index`` without a row yet. Call with the table's lock held."""
        if self._generation != self.table.generation:
            self._rows[:] = -1
            self._generation = self.table.generation
        if len(self._rows) < self.graph.num_entities:
            grown = np.full(self.graph.num_entities, -1, dtype=np.int64)
            grown[: len(self._rows)] = self._rows
            self._rows = grown
        return np.unique(index[self._rows[index] < 0]) if index.size else index

    def touched(self) -> tuple[np.ndarray, np.ndarray]:
        """(digests, vectors) of every vector the table holds: what a bundle stores."""
        return self.table.contents()


class FeatureCache:
    """Feature vectors by entity text (keyed by SHA-256), for one encoder, kept in a folder of
    safetensors files; remembers the vectors added since the last `save`."""

    def __init__(self, encoder: str):
        self.encoder = encoder
        self._vectors: dict[bytes, np.ndarray] = {}
        self._fresh: dict[bytes, np.ndarray] = {}

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text_key(text) in self._vectors

    def __getitem__(self, text: str) -> np.ndarray:
        return self._vectors[text_key(text)]

    def __setitem__(self, text: str, vector: np.ndarray) -> None:
        key = text_key(text)
        self._vectors[key] = self._fresh[key] = np.asarray(vector, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._vectors)

    @classmethod
    def load(cls, folder: Path, encoder: str) -> FeatureCache:
        """Every readable cache file of ``folder`` made by ``encoder``."""
        from safetensors import SafetensorError, safe_open

        cache = cls(encoder)
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                with safe_open(str(path), "np") as f:
                    if (f.metadata() or {}).get("encoder") != encoder:
                        continue
                    digests, vectors = f.get_tensor("digests"), f.get_tensor("features")
            except (SafetensorError, OSError, KeyError, ValueError) as e:
                log.warning(
                    "skipping the feature cache file %s (%s); its texts are re-embedded", path, e
                )
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
        path = write_new(folder, data, names)
        self._fresh.clear()
        return path


def write_new(folder: Path, data: bytes, names: Sequence[str]) -> Path:
    """Write ``data`` fsync'd under ``folder``, then claim the first free one of ``names`` with
    a hard link (which fails if the name is taken, so processes sharing the folder never
    overwrite each other's files, and a reader never sees a partial file). Returns the file;
    on an error (a full disk) nothing is left, the partial file neither."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{os.getpid()}-{threading.get_native_id()}-{time.time_ns()}.partial"
    try:
        with partial.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for name in names:
            with contextlib.suppress(FileExistsError):
                os.link(partial, folder / name)
                return folder / name
        raise AssertionError("every candidate name is taken")  # pragma: no cover
    finally:
        partial.unlink(missing_ok=True)
