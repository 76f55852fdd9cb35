"""The reference: what a careful practitioner builds first, and the probe that picks ``hops``.

Features of a text: its frozen base-encoder embedding (the vector the encoder gives before any
tuning), and for each class, the counts of KG walks from its linked entities to the class's label
node, by relation sequence, up to ``hops`` (`fusion.path_counts`), with each class's share of a
sequence's walks beside them. Label facts are masked as in training. A multinomial logistic
regression (scikit-learn) reads them, its inverse regularisation ``C`` chosen on ``val:unseen``.

`kgfuse compare` reports it as the row fused has to beat. Training uses the same fit to choose
``subgraph.hops: auto``: the hops (1 to 3) whose reference scores best on ``val:unseen``, pooled
over several entity-held-out splits (fusion/choice_splits.py), measured in seconds on the texts
already linked, since a longer walk helps only where the KG's deciding paths are that long, and
adds noise elsewhere.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion.auto import Choice
from fusion.path_counts import PathCounter, RelationSequence, fit_sequences

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
HOP_CHOICES = (1, 2, 3)
MAX_TEXTS = 4000  # the hops probe fits on at most this many training texts (seeded sample)


Walks = dict[RelationSequence, np.ndarray]


def count_features(counter: PathCounter, walks: Sequence[Walks], hops: int) -> np.ndarray:
    """float32 [texts, 2 * sequences * C]: log1p counts of the counter's sequences no longer
    than ``hops``, then each class's share of every sequence's walks."""
    kept = [
        w if hops >= counter.hops else {s: r for s, r in w.items() if len(s) <= hops} for w in walks
    ]
    counts = np.stack([counter.encode(w) for w in kept]) if kept else np.zeros((0, counter.dims))
    raw = np.expm1(counts).reshape(len(kept), -1, counter.num_labels)
    share = raw / np.maximum(raw.sum(-1, keepdims=True), 1.0)
    return np.hstack([counts, share.reshape(len(kept), -1)]).astype(np.float32)


@dataclass
class ReferenceFit:
    """A fitted reference: the scaler and regression, its ``C``, and its val:unseen accuracy."""

    model: Any  # sklearn LogisticRegression
    scaler: Any  # sklearn StandardScaler
    C: float
    val_accuracy: float
    scores: dict[float, float]  # val accuracy of each C tried

    def logits(self, features: np.ndarray) -> np.ndarray:
        """float64 [texts, classes present in training]: the regression's decision values."""
        return self.model.decision_function(self.scaler.transform(features))


def fit_reference(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_labels: int,
    grid: Sequence[float] = C_GRID,
) -> ReferenceFit:
    """A multinomial logistic regression per ``C`` in ``grid`` on standardised features; the
    best on the validation texts wins (a tie goes to the smaller ``C``). The grid is fitted in
    ascending order, each fit starting from the last one's weights (a regularisation path, as
    scikit-learn's LogisticRegressionCV does): half the time of fitting each from zero, to the
    same optimum within the solver's tolerance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    tx, vx = scaler.transform(train_x), scaler.transform(val_x)
    best: ReferenceFit | None = None
    scores: dict[float, float] = {}
    path = LogisticRegression(max_iter=1000, warm_start=True)
    for C in sorted(grid):
        path.set_params(C=C).fit(tx, train_y)
        acc = float((path.predict(vx) == val_y).mean()) if len(val_y) else 0.0
        scores[C] = acc
        if best is None or acc > best.val_accuracy:  # a copy: the next C refits `path`
            best = ReferenceFit(copy.deepcopy(path), scaler, C, acc, scores)
    assert best is not None, "the C grid is not empty"
    best.scores = scores
    return best


def full_logits(fit: ReferenceFit, features: np.ndarray, num_labels: int) -> np.ndarray:
    """[texts, num_labels] logits; a class no training text had gets -inf."""
    out = np.full((len(features), num_labels), -np.inf)
    out[:, fit.model.classes_] = fit.logits(features).reshape(len(features), -1)
    return out


@dataclass
class ChoiceSplit:
    """One entity-held-out split that the automatic choices are measured on: the texts' frozen
    embeddings, their walks (each without the label facts this split hides), gold labels, the
    texts the reference fits on, and the val:unseen texts it is scored on."""

    embeddings: np.ndarray
    walks: Sequence[Walks]
    gold: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray


@dataclass(frozen=True)
class HopScores:
    """The reference's pooled validation accuracy by hops (0: the text alone), and on how many
    val:unseen texts it was measured."""

    accuracy: dict[int, float]
    texts: int

    def lift_of_paths(self) -> tuple[int, bool]:
        """(the best hops, whether its label paths lift the reference above the text alone by
        more than one standard error; a smaller lift is within what validation cannot tell)."""
        _, best, margin = fewest_within_one_se(
            {h: self.accuracy[h] for h in HOP_CHOICES}, self.texts
        )
        return best, self.accuracy[best] > self.accuracy[0] + margin


def choose_hops(
    counter: PathCounter, splits: Sequence[ChoiceSplit], max_sequences: int
) -> tuple[Choice, HopScores]:
    """``subgraph.hops: auto``: the hops whose reference scores best on the validation texts of
    ``splits``, pooled: for each ``C``, the share of all their validation texts predicted right,
    then the best ``C``. One split of a few hundred texts ranks hops a point or two apart by
    chance; several splits, each holding out other entities, rank them on more texts and more
    entities. ``counter`` counts up to the longest choice. The fewest hops that score within one
    standard error of the best win (the one-standard-error rule): where validation cannot tell
    two radii apart, the smaller one costs less and brings fewer noisy paths. Hops 0 (the text
    embedding alone) is fitted too, as the bar."""
    if not splits:
        raise ValueError("choose_hops needs at least one validation split")
    num_labels = counter.num_labels
    scores: dict[int, float] = {}
    wins: Counter[int] = Counter()  # how many splits each hops wins alone (a tie: fewer hops)
    per_split: list[dict[int, float]] = [{} for _ in splits]
    for hops in (0, *HOP_CHOICES):
        correct: dict[float, float] = {}
        total = 0
        for k, split in enumerate(splits):
            if hops == 0:
                x = split.embeddings
            else:
                shorter = [
                    {s: r for s, r in split.walks[i].items() if len(s) <= hops}
                    for i in split.train_idx
                ]
                counter.sequences = fit_sequences(shorter, max_sequences)
                x = np.hstack([split.embeddings, count_features(counter, split.walks, hops)])
            tr, va = split.train_idx, split.val_idx
            fit = fit_reference(x[tr], split.gold[tr], x[va], split.gold[va], num_labels)
            for C, accuracy in fit.scores.items():
                correct[C] = correct.get(C, 0.0) + accuracy * len(va)
            total += len(va)
            per_split[k][hops] = fit.val_accuracy
        scores[hops] = max(correct.values()) / max(total, 1)
    for split_scores in per_split:
        wins[_top({h: split_scores[h] for h in HOP_CHOICES})] += 1
    texts = sum(len(s.val_idx) for s in splits)
    best, top, margin = fewest_within_one_se({h: scores[h] for h in HOP_CHOICES}, texts)
    figures = ", ".join(f"{h} hops {scores[h]:.3f}" for h in HOP_CHOICES)
    over = ""
    if len(splits) > 1:
        over = (
            f" over {len(splits)} entity-held-out splits ({texts} val:unseen texts in all; "
            f"{top} hops best in {wins[top]} of them)"
        )
    verdict = f"{best} scores best"
    if best != top:
        verdict = (
            f"{best} scores within one standard error ({margin:.3f}) of {top}'s, and fewer hops "
            "win where validation cannot tell them apart"
        )
    reason = (
        f"the reference's validation accuracy{over}: {figures} "
        f"(text alone {scores[0]:.3f}); {verdict}"
    )
    if paths_add_nothing(scores):
        warnings.warn(
            f"the KG's label paths do not help on validation: the reference scores "
            f"{scores[0]:.3f} on the text alone and at best {scores[top]:.3f} with paths "
            f"({top} hops). "
            "Check how many texts are linked (kgfuse link), that the label map names the "
            "classes' KG nodes, and whether the paths that decide are longer than "
            f"{max(HOP_CHOICES)} hops",
            KGHelpWarning,
            stacklevel=2,
        )
    return Choice(best, reason), HopScores(scores, texts)


def paths_add_nothing(scores: dict[int, float]) -> bool:
    """True when no hop count lifts the reference above the text alone (``scores[0]``). The
    top score decides, not the chosen one: the one-standard-error rule may choose fewer hops
    that score below the text alone while more hops score above it."""
    return max(scores[h] for h in HOP_CHOICES) <= scores[0]


def fewest_within_one_se(scores: dict[int, float], texts: int) -> tuple[int, int, float]:
    """(chosen, top, margin): the smallest key whose accuracy is within one standard error
    (``margin``, binomial, of the top accuracy on ``texts`` texts) of the top-scoring key."""
    top = _top(scores)
    margin = standard_error(scores[top], texts)
    return min(k for k in scores if scores[k] >= scores[top] - margin), top, margin


def _top(scores: dict[int, float]) -> int:
    """The key with the highest accuracy; a tie goes to the smaller key."""
    return max(scores, key=lambda k: (scores[k], -k))


def standard_error(accuracy: float, texts: int) -> float:
    """The binomial standard error of an accuracy measured on ``texts`` texts."""
    return math.sqrt(accuracy * (1.0 - accuracy) / max(texts, 1))


class KGHelpWarning(UserWarning):
    """On validation, the KG's label paths add nothing to the text: a sign to check the data."""
