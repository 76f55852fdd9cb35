"""Held-out-entity splits: texts about KG entities that no training text mentions.

One implementation serves both places that need such a split:
- `kgfuse split` writes a test set (texts mentioning a held-out share of the linked entities), a
  validation set and a training set to files;
- `kgfuse train`, when the config gives no val file, carves its validation set out of the
  training texts the same way, so that early stopping, checkpoint choice, tuning and the
  automatic settings reward what kgfuse promises: accuracy on entities training never saw.

The rule (`hold_out_entities`): draw candidate entities in a seeded order and hold each one out,
with every text that mentions it, until the held-out texts reach the wanted share. An entity is
passed over when holding it out would overshoot that share by more than a tenth, or would leave a
label with fewer than half of its texts (a model cannot learn a class it never sees). No text
left in training mentions a held-out entity; a held-out text may also mention entities that
training texts mention. Label nodes are never held out.

A validation set has two parts (`partition_validation` tells them apart in any val set, a file
included): ``val:unseen``, the texts that mention an entity no training text mentions, and
``val:seen``, the others (a random, stratified share of the rest, texts with no linked entity
among them).
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.data import Example, check_fraction, stratified_indices
from kg.files import atomic_directory, refuse_foreign_folder
from kg.graph import KnowledgeGraph
from nlp.texts import DataError

OVERSHOOT = 0.1  # an entity whose texts overshoot the wanted share by more is passed over
MIN_LABEL_SHARE = 0.5  # holding out never leaves a label with less than this share of its texts


@dataclass
class ValidationSplit:
    train: list[Example]
    unseen: list[Example]  # texts that mention a held-out entity
    seen: list[Example]  # a random share of the others
    held_out: list[str]  # IRIs of the held-out entities, sorted
    train_mentions: list[list[str]]  # IRIs linked in each training text (order of `train`)


@dataclass
class EntitySplit:
    train: list[Example]
    val: list[Example]  # val:unseen texts, then val:seen texts
    test: list[Example]  # texts that mention a held-out entity
    test_seen: list[Example]  # a random share of the others: the in-distribution test
    held_out: list[str]  # IRIs of the entities held out for test, sorted
    mentions: list[list[str]]  # IRIs linked in each input example (input order)
    val_unseen: int = 0  # how many of `val` mention an entity no training text mentions


def hold_out_entities(
    labels: Sequence[str],
    mentions: Sequence[Sequence[str]],
    fraction: float,
    seed: int,
    candidates: set[str] | None = None,
    unit: str = "texts",
) -> set[str]:
    """Entities to hold out (see the module docstring).

    Args:
        labels: the label of each text.
        mentions: the entity IRIs each text mentions.
        fraction: the share to hold out: of the texts (``unit="texts"``) or of the candidate
            entities (``unit="entities"``).
        candidates: entities that may be held out (default: every mentioned entity).
    """
    check_fraction(fraction, "the held-out fraction")
    if unit not in ("texts", "entities"):
        raise ValueError(f"unit must be 'texts' or 'entities' (got {unit!r})")
    texts_of: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(mentions):
        for iri in dict.fromkeys(m):
            if candidates is None or iri in candidates:
                texts_of[iri].append(i)
    pool = sorted(texts_of)
    if not pool:
        raise DataError(
            "no text mentions an entity that may be held out; check the KG, the linker "
            "settings or the type filter"
        )
    random.Random(seed).shuffle(pool)
    per_label = Counter(labels)
    left = dict(per_label)
    if unit == "texts":
        wanted = fraction * len(labels)
        limit = wanted * (1 + OVERSHOOT) + 1
    else:
        wanted = max(1, round(fraction * len(pool)))
    held: set[str] = set()
    taken: set[int] = set()
    for iri in pool:
        if (len(taken) if unit == "texts" else len(held)) >= wanted:
            break
        new = [i for i in texts_of[iri] if i not in taken]
        if unit == "texts" and len(taken) + len(new) > limit:
            continue
        loss = Counter(labels[i] for i in new)
        if any(
            left[lab] - n < math.ceil(MIN_LABEL_SHARE * per_label[lab]) for lab, n in loss.items()
        ):
            continue
        held.add(iri)
        taken.update(new)
        for lab, n in loss.items():
            left[lab] -= n
    return held


def validation_split(
    examples: Sequence[Example],
    mentions: Sequence[Sequence[str]],
    fraction: float,
    seen_fraction: float,
    seed: int,
    candidates: set[str] | None = None,
) -> ValidationSplit:
    """Carve ``val:unseen`` (about ``fraction`` of the texts, by held-out entity) and
    ``val:seen`` (``seen_fraction`` of the rest, stratified) out of ``examples``."""
    labels = [e.label for e in examples]
    try:
        held = hold_out_entities(labels, mentions, fraction, seed, candidates, unit="texts")
    except DataError:
        held = set()  # nothing linked: every validation text is a seen one
    unseen_idx = [i for i, m in enumerate(mentions) if held.intersection(m)]
    gone = set(unseen_idx)
    rest = [i for i in range(len(examples)) if i not in gone]
    seen_idx: list[int] = []
    if seen_fraction > 0 and len(rest) > 1:
        kept, aside = stratified_indices([labels[i] for i in rest], seen_fraction, seed + 1)
        rest, seen_idx = [rest[k] for k in kept], [rest[k] for k in aside]
    return ValidationSplit(
        [examples[i] for i in rest],
        [examples[i] for i in unseen_idx],
        [examples[i] for i in seen_idx],
        sorted(held),
        [list(mentions[i]) for i in rest],
    )


def partition_validation(
    val_mentions: Sequence[Sequence[Hashable]],
    train_mentions: Iterable[Sequence[Hashable]],
    candidates: set[Any] | None = None,
) -> list[bool]:
    """For each val text, whether it is ``unseen``: it mentions an entity (a candidate, when
    given) that no training text mentions."""
    known = {iri for m in train_mentions for iri in m}
    return [
        any(iri not in known and (candidates is None or iri in candidates) for iri in m)
        for m in val_mentions
    ]


def held_out_entity_split(
    examples: Sequence[Example],
    mentions: Sequence[Sequence[str]],
    fraction: float,
    seed: int = 0,
    val_fraction: float = 0.1,
    candidates: set[str] | None = None,
    seen_fraction: float = 0.0,
    val_seen_fraction: float = 0.05,
) -> EntitySplit:
    """`kgfuse split`: hold out ``fraction`` of the candidate entities for test, then carve the
    validation set out of the rest the way training does (`validation_split`).

    Args:
        fraction: share of the candidate entities to hold out for test.
        val_fraction: share of the remaining texts held out by entity as val:unseen.
        candidates: entities that may be held out (default: every linked entity).
        seen_fraction: share of the other texts set aside (stratified) as ``test_seen``.
        val_seen_fraction: share of the remaining texts set aside at random as val:seen.
    """
    labels = [e.label for e in examples]
    held = hold_out_entities(labels, mentions, fraction, seed, candidates, unit="entities")
    test = [e for e, m in zip(examples, mentions, strict=True) if held.intersection(m)]
    rest_idx = [i for i, m in enumerate(mentions) if not held.intersection(m)]
    if not rest_idx:
        raise DataError("every text mentions a held-out entity; lower --fraction")
    seen: list[Example] = []
    if seen_fraction > 0:
        kept, aside = stratified_indices([labels[i] for i in rest_idx], seen_fraction, seed + 1)
        seen = [examples[rest_idx[k]] for k in aside]
        rest_idx = [rest_idx[k] for k in kept]
    val = validation_split(
        [examples[i] for i in rest_idx],
        [mentions[i] for i in rest_idx],
        val_fraction,
        val_seen_fraction,
        seed + 2,
        None if candidates is None else candidates - held,
    )
    return EntitySplit(
        val.train,
        val.unseen + val.seen,
        test,
        seen,
        sorted(held),
        [list(m) for m in mentions],
        val_unseen=len(val.unseen),
    )


def labels_only_in_test(split: EntitySplit) -> list[str]:
    """Labels no train text carries: a model cannot predict them (choose another seed)."""
    return sorted({e.label for e in split.test} - {e.label for e in split.train})


def write_split(
    split: EntitySplit,
    graph: KnowledgeGraph,
    out: Path,
    text_column: str,
    label_column: str,
    settings: dict[str, object],
) -> None:
    """train.csv, val.csv, test.csv (held-out entities), test_seen.csv (when asked for),
    held_out.tsv and split.json, written atomically."""
    extra = sorted(
        {k for part in (split.train, split.val, split.test) for e in part for k in e.fields}
    )
    refuse_foreign_folder(out, ("split.json",), "a split")
    with atomic_directory(out) as tmp:
        parts = [("train", split.train), ("val", split.val), ("test", split.test)]
        if split.test_seen:
            parts.append(("test_seen", split.test_seen))
        for name, part in parts:
            with (tmp / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f)
                writer.writerow([text_column, label_column, *extra])
                for e in part:
                    writer.writerow([e.text, e.label, *(e.fields.get(k, "") for k in extra)])
        with (tmp / "held_out.tsv").open("w", encoding="utf-8") as f:
            f.write("entity\tlabel\n")
            for iri in split.held_out:
                f.write(f"{iri}\t{graph.label(graph.entity_id(iri))}\n")
        summary = {
            **settings,
            "counts": {name: len(part) for name, part in parts},
            "val_unseen": split.val_unseen,
            "held_out": len(split.held_out),
            "texts_with_links": sum(bool(m) for m in split.mentions),
            "labels_only_in_test": labels_only_in_test(split),
        }
        (tmp / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
