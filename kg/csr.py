"""Gathering rows of a CSR adjacency with numpy, for the vectorised paths over compiled graphs."""

from __future__ import annotations

import numpy as np


def csr_entries(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR positions ``starts[i]:ends[i]`` of every row i, concatenated, and the row each
    one belongs to: (owner [total], positions [total]), both int64.

    Shapes: starts, ends: [rows]; total = sum(ends - starts)."""
    starts = np.asarray(starts, dtype=np.int64)
    lens = np.asarray(ends, dtype=np.int64) - starts
    total = int(lens.sum())
    owner = np.repeat(np.arange(len(starts)), lens)
    if total == 0:
        return owner, np.empty(0, dtype=np.int64)
    return owner, np.arange(total) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
