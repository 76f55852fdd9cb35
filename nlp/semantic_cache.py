"""The on-disk cache of semantic candidates' vectors: .npy + JSON in one folder, no pickle.

    meta.json     version, the encoder, vocabulary and alias fingerprints, one-off seconds
    words.json    the words with a static vector, in row order
    words.npy     their vectors (float16)
    aliases.json  {"entities": [...], "texts": [...]}: the embedded KG names
    aliases.npy   their vectors (float32)

Word vectors depend on the encoder only, so a cache serves any KG; alias vectors are redone
when the aliases change. Every file is written atomically, meta.json last, so a reader never
takes a half-written cache for a whole one: what does not match is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kg.files import atomic_file, write_json

CACHE_VERSION = 1


def digest(items: Iterable[str]) -> str:
    """A short fingerprint of some strings (a vocabulary, the aliases)."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def encoder_fingerprint(folder: str | Path) -> str:
    """A short fingerprint of an encoder folder (names, sizes and first 64 KiB of its model,
    config and vocabulary files) and of the pooling the vectors were made with."""
    folder = Path(folder)
    h = hashlib.sha256(f"v{CACHE_VERSION}:mean-pool".encode())
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            h.update(f"{f.relative_to(folder)}:{f.stat().st_size}".encode())
            with f.open("rb") as fh:
                h.update(fh.read(1 << 16))
    return h.hexdigest()[:16]


def read_meta(folder: Path | None) -> dict[str, Any]:
    """The cache's meta.json; empty when there is none or it is of another version."""
    if folder is None:
        return {}
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) and meta.get("version") == CACHE_VERSION else {}


def load_words(
    folder: Path | None, meta: dict[str, Any], vocab_id: str
) -> tuple[dict[str, int], np.ndarray] | None:
    """(word -> row, float16 vectors) when the cache holds the vocabulary ``vocab_id``."""
    if folder is None or meta.get("vocabulary") != vocab_id:
        return None
    try:
        words = json.loads((folder / "words.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "words.npy", allow_pickle=False)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(words, list) or vectors.ndim != 2 or len(words) != len(vectors):
        return None
    return {w: i for i, w in enumerate(words)}, vectors.astype(np.float16)


def load_alias_vectors(
    folder: Path | None, meta: dict[str, Any], alias_id: str, count: int
) -> np.ndarray | None:
    """The float32 vectors of the ``count`` aliases fingerprinted ``alias_id``, if cached."""
    if folder is None or meta.get("aliases") != alias_id:
        return None
    try:
        vectors = np.load(folder / "aliases.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.ndim != 2 or len(vectors) != count:
        return None
    return vectors.astype(np.float32)


def save_vectors(
    folder: Path,
    meta: dict[str, Any],
    words: list[str],
    word_vectors: np.ndarray,
    alias_entities: list[int],
    alias_texts: list[str],
    alias_vectors: np.ndarray,
) -> None:
    """Write the cache's five files to ``folder``; ``meta`` (the fingerprints) last."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("words.npy", word_vectors), ("aliases.npy", alias_vectors)):
        with atomic_file(folder / name, "wb") as f:
            np.save(f, data, allow_pickle=False)
    write_json(folder / "words.json", words, indent=None)
    write_json(
        folder / "aliases.json", {"entities": alias_entities, "texts": alias_texts}, indent=None
    )
    write_json(folder / "meta.json", {"version": CACHE_VERSION, **meta}, indent=None)
