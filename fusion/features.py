"""Node features: every entity's text embedded once by the frozen base encoder, cached per KG.

No per-entity embedding table is learned: an entity unseen in training still gets a meaningful
vector from its label and description. The cache file is keyed by the KG fingerprint and the
encoder's id, so a changed KG or encoder never reuses stale vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusion.encoder import TextEncoder, encoder_id
from kg.graph import GraphView
from kg.storage import atomic_directory


def cache_name(kg: GraphView, encoder: TextEncoder) -> str:
    return (
        f"node-features-{kg.fingerprint[:16]}-{encoder_id(encoder.path)}-{encoder.config.pooling}"
    )


def node_features(
    kg: GraphView,
    encoder: TextEncoder,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """float32 [num_entities, hidden]: L2-normalized embeddings of each entity's text.

    With ``cache_dir``, the array is read from (or written to) ``cache_dir/<key>/features.safetensors``.
    """
    from safetensors.numpy import load_file, save_file

    folder = Path(cache_dir) / cache_name(kg, encoder) if cache_dir is not None else None
    if folder is not None and (folder / "features.safetensors").is_file():
        cached = load_file(str(folder / "features.safetensors"))["features"]
        if cached.shape == (kg.num_entities, encoder.hidden_size):
            return cached
    features = encoder.embed([kg.text(e) for e in range(kg.num_entities)], batch_size=batch_size)
    features = features.astype(np.float32)
    if folder is not None:
        with atomic_directory(folder) as tmp:
            save_file({"features": features}, str(tmp / "features.safetensors"))
    return features
