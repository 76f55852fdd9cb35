"""Calibrated probabilities: temperature scaling (Guo et al., 2017), fitted on validation.

One scalar T divides every logit: the ranking, and so every prediction, is unchanged; only how
sure the model says it is changes. T is fitted after training by minimising the negative
log-likelihood of the validation texts the run selects on (val:unseen by default), stored in the
bundle, and applied by every way of predicting (CLI, Python API, HTTP).

Metrics: the expected calibration error (ECE: 15 equal-width confidence bins, the weighted gap
between each bin's accuracy and its mean confidence) and the NLL, before and after.
"""

from __future__ import annotations

import numpy as np
import torch

ECE_BINS = 15
T_RANGE = (
    0.25,
    10.0,
)  # at most 4x sharper or 10x softer: a small, all-correct set cannot push T to 0
MIN_TEXTS = 20  # fewer validation texts leave T at 1


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The T in ``T_RANGE`` minimising the NLL of ``softmax(logits / T)`` on ``gold``
    (1.0 with fewer than ``MIN_TEXTS`` texts to fit on)."""
    if len(gold) < MIN_TEXTS:
        return 1.0
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(gold, dtype=torch.long)
    # the NLL is convex in 1/T: a bounded search on log T is exact enough and cannot diverge
    grid = torch.linspace(np.log(T_RANGE[0]), np.log(T_RANGE[1]), 200, dtype=torch.float64)
    losses = torch.stack([torch.nn.functional.cross_entropy(z / torch.exp(g), y) for g in grid])
    best = int(torch.argmin(losses))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    for _ in range(40):  # golden-section refinement between the grid's neighbours
        a = hi - 0.618 * (hi - lo)
        b = lo + 0.618 * (hi - lo)
        fa = torch.nn.functional.cross_entropy(z / torch.exp(a), y)
        fb = torch.nn.functional.cross_entropy(z / torch.exp(b), y)
        if fa < fb:
            hi = b
        else:
            lo = a
    return float(torch.exp((lo + hi) / 2))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)``, float64 [n, classes]."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of the top probability."""
    if len(gold) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def negative_log_likelihood(probs: np.ndarray, gold: np.ndarray) -> float:
    if len(gold) == 0:
        return 0.0
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, 1.0))))


def calibration_report(
    logits: np.ndarray, gold: np.ndarray, temperature: float
) -> dict[str, float]:
    """ECE and NLL before (T = 1) and after temperature scaling."""
    raw, scaled = probabilities(logits), probabilities(logits, temperature)
    return {
        "ece_raw": expected_calibration_error(raw, gold),
        "ece": expected_calibration_error(scaled, gold),
        "nll_raw": negative_log_likelihood(raw, gold),
        "nll": negative_log_likelihood(scaled, gold),
    }
