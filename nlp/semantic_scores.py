"""Rules 2 and 4 of nlp/semantic.py as plain functions over arrays: score candidate spans
against the aliases by static word vectors (`static_scores`), then keep the best spans, without
overlaps, each with the entities scoring near its best (`select_spans`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from nlp.keys import FUNCTION_WORDS


def static_scores(
    low: list[str],
    spans: list[tuple[int, int]],
    word_rows: Callable[[list[str]], np.ndarray],
    word_vectors: Callable[[], np.ndarray],
    alias_vectors: np.ndarray,
    alias_static: np.ndarray | None,
) -> np.ndarray:
    """Cosines, shape ``(len(spans), aliases)``, of each span's mean word vector (function
    words left out) with the encoded aliases. Every span holds a content word.

    Args:
        low: the text's words, lower-cased.
        spans: (start, end) word ranges.
        word_rows: rows of words in the word vectors (embedding unseen ones).
        word_vectors: the word vectors, read after ``word_rows`` has run.
        alias_vectors: the aliases as the encoder embeds them (unit rows).
        alias_static: the aliases' own mean static vectors: when given (``static`` mode), a
            multi-word span scores the mean of its cosines with both, since a static phrase
            vector compared with an encoded alias runs low; None: encoded aliases only.
    """
    used = np.zeros(len(low), dtype=bool)
    for a, b in spans:
        used[a:b] = True
    idx = [i for i in np.flatnonzero(used).tolist() if low[i] not in FUNCTION_WORDS]
    rows = word_rows([low[i] for i in idx])
    vectors = word_vectors()
    summed = np.zeros((len(low) + 1, vectors.shape[1]), dtype=np.float32)
    summed[np.array(idx, dtype=np.int64) + 1] = vectors[rows]
    np.cumsum(summed, axis=0, out=summed)
    starts, ends = np.array(spans, dtype=np.int64).T
    mean = summed[ends] - summed[starts]
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-9)
    scores = mean @ alias_vectors.T
    if alias_static is not None:
        multi = np.flatnonzero(ends - starts > 1)
        if len(multi):
            scores[multi] = (scores[multi] + mean[multi] @ alias_static.T) / 2
    return scores


class Selection(NamedTuple):
    """How `select_spans` keeps spans and their entities (see `SemanticCandidates`)."""

    threshold: float  # minimum cosine of a span and an alias
    partial_threshold: float  # the same, when the span holds only part of the alias's words
    margin: float  # entities within this of the span's best are kept
    max_entities: int  # most entities per span
    length_penalty: float  # subtracted per extra word when ranking overlapping spans


def select_spans(
    spans: list[tuple[int, int]],
    scores: np.ndarray,
    alias_entities: np.ndarray,
    is_partial: Callable[[tuple[int, int], int], bool],
    rule: Selection,
) -> list[tuple[int, int, int, float]]:
    """(start, end, entity, cosine) of the spans kept: a span scores its best alias that meets
    the threshold (the partial one where ``is_partial(span, alias)``); the best spans are taken
    first (ties and near-ties, within ``length_penalty`` per extra word, go to the shorter),
    skipping any that overlaps one taken. ``scores`` is modified."""
    floor = min(rule.threshold, rule.partial_threshold)
    for i, j in zip(*np.nonzero(scores >= floor), strict=True):
        need = rule.partial_threshold if is_partial(spans[i], j) else rule.threshold
        if scores[i, j] < need:
            scores[i, j] = -1.0
    best = scores.max(axis=1)
    rank = best - rule.length_penalty * np.array([b - a - 1 for a, b in spans])
    order = sorted(
        (i for i in range(len(spans)) if best[i] >= floor),
        key=lambda i: (-rank[i], spans[i][0] - spans[i][1], spans[i][0]),
    )
    taken: list[tuple[int, int]] = []
    out: list[tuple[int, int, int, float]] = []
    for i in order:
        a, b = spans[i]
        if any(a < tb and ta < b for ta, tb in taken):
            continue
        taken.append((a, b))
        out.extend(
            (a, b, e, round(s, 4))
            for e, s in _entities(scores[i], best[i], floor, alias_entities, rule)
        )
    return sorted(out, key=lambda t: (t[0], t[1], -t[3]))


def _entities(
    row: np.ndarray, best: float, floor: float, alias_entities: np.ndarray, rule: Selection
) -> list[tuple[int, float]]:
    """The entities of one span's aliases scoring within ``margin`` of its best, best first."""
    by_entity: dict[int, float] = {}
    for j in np.argsort(-row):
        s = float(row[j])
        if s < max(floor, best - rule.margin):
            break
        by_entity.setdefault(int(alias_entities[j]), s)
        if len(by_entity) >= rule.max_entities:
            break
    return list(by_entity.items())
