"""The validation splits that the automatic choices are measured on.

``subgraph.hops: auto`` and ``train.probe_init: auto`` compare the reference
(fusion/reference.py) on the text alone and with 1-, 2- and 3-hop label paths. One val:unseen set
of a hundred-odd texts about a dozen or two entities ranks those a point or two apart by chance.
On symptom2disease's 125 val:unseen texts, for one, all four scored within 3.2 points, and the
choice flipped with one text. So the choice pools validation's own split with
``data.choice_splits - 1`` more. Each is carved from the same labelled texts, training and
validation together, by holding out other entities the way validation is carved
(`fusion.split.hold_out_entities`). Each hides the label facts of its own held-out entities, as
validation does. Only the reference is fitted on them, a logistic regression, in seconds. The
model itself still trains and stops on validation's own split. No test text is read.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fusion.data import Example
from fusion.examples import hidden_facts
from fusion.path_counts import PathCounter
from fusion.reference import MAX_TEXTS, ChoiceSplit
from fusion.split import hold_out_entities
from nlp.texts import DataError

SEED_STRIDE = 1009  # split k draws its held-out entities with seed + k * SEED_STRIDE


@dataclass(frozen=True)
class LinkedTexts:
    """Labelled texts with the entity ids each mentions, and whose own label facts it hides."""

    examples: Sequence[Example]
    ids: Sequence[Sequence[int]]
    masked: Sequence[bool]


def own_split(
    counter: PathCounter,
    embed: Callable[[list[str]], np.ndarray],
    labels: Sequence[str],
    train: LinkedTexts,
    val: LinkedTexts,
    hidden: frozenset[int],
    seed: int,
) -> ChoiceSplit:
    """Validation's own split: the reference fits on (at most ``MAX_TEXTS``, a seeded sample of)
    the training texts and is scored on ``val``; ``hidden`` entities' label facts are hidden
    from both, as while the model trains."""
    sample = _sample(len(train.examples), seed)
    fit = LinkedTexts(
        [train.examples[i] for i in sample],
        [train.ids[i] for i in sample],
        [train.masked[i] for i in sample],
    )
    return _split(counter, embed, labels, fit, val, hidden)


def extra_splits(
    counter: PathCounter,
    embed: Callable[[list[str]], np.ndarray],
    labels: Sequence[str],
    pool: LinkedTexts,
    candidates: set[int],
    count: int,
    fraction: float,
    seed: int,
    hide_facts: bool,
    mask_rate: float,
) -> list[ChoiceSplit]:
    """``count`` more splits of ``pool`` (every labelled text of the run). Split k holds out
    entities among ``candidates`` with its own seed until about ``fraction`` of the texts
    mention one. Those texts are its val:unseen, and the others fit the reference. When
    ``hide_facts``, the held-out entities' label facts are hidden from every text of the split
    (a new entity has none). Each fitting text hides its own with probability ``mask_rate``, as
    training does. A draw that holds out nothing (every candidate would starve a label) is left
    out."""
    graph = counter.graph
    mentions = [[graph.iri(e) for e in ids] for ids in pool.ids]
    allowed = {graph.iri(e) for e in candidates}
    gold = [e.label for e in pool.examples]
    out: list[ChoiceSplit] = []
    for k in range(1, count + 1):
        split_seed = seed + k * SEED_STRIDE
        try:
            held = hold_out_entities(gold, mentions, fraction, split_seed, allowed, unit="texts")
        except DataError:
            break  # no candidate at all: no draw can hold one out
        unseen = [i for i, m in enumerate(mentions) if held.intersection(m)]
        if not unseen:
            continue
        gone = set(unseen)
        rest = [i for i in range(len(pool.examples)) if i not in gone]
        rest = [rest[i] for i in _sample(len(rest), split_seed)]
        draw = random.Random(split_seed)
        fit = LinkedTexts(
            [pool.examples[i] for i in rest],
            [pool.ids[i] for i in rest],
            [draw.random() < mask_rate for _ in rest],
        )
        val = LinkedTexts(
            [pool.examples[i] for i in unseen],
            [pool.ids[i] for i in unseen],
            [hide_facts] * len(unseen),
        )
        hidden = frozenset(graph.entity_id(iri) for iri in held) if hide_facts else frozenset()
        out.append(_split(counter, embed, labels, fit, val, hidden))
    return out


def _split(
    counter: PathCounter,
    embed: Callable[[list[str]], np.ndarray],
    labels: Sequence[str],
    fit: LinkedTexts,
    val: LinkedTexts,
    hidden: frozenset[int],
) -> ChoiceSplit:
    texts = list(fit.examples) + list(val.examples)
    ids = list(fit.ids) + list(val.ids)
    masked = list(fit.masked) + list(val.masked)
    walks = [
        counter.walk_counts(e, hidden_facts(e, own, hidden))
        for e, own in zip(ids, masked, strict=True)
    ]
    index = {label: i for i, label in enumerate(labels)}
    n = len(fit.examples)
    return ChoiceSplit(
        embed([e.text for e in texts]),
        walks,
        np.array([index[e.label] for e in texts]),
        np.arange(n),
        np.arange(n, len(texts)),
    )


def _sample(n: int, seed: int) -> np.ndarray:
    """Positions of at most ``MAX_TEXTS`` of ``n`` texts: all of them, or a seeded sample."""
    if n <= MAX_TEXTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_TEXTS, replace=False))
