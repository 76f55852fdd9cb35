"""Held-out-entity splits: test texts mention KG entities that no training text mentions.

Link every text, draw a seeded fraction of the linked entities (optionally of some rdf:types
only), and send every text that mentions a drawn entity to test; the others are split into
train and val (stratified). This measures what kgfuse promises: generalization to entities the
model never saw, reachable only through the graph.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fusion.data import Example, stratified_split
from kg.graph import KnowledgeGraph
from kg.storage import atomic_directory
from nlp.texts import DataError


@dataclass
class EntitySplit:
    train: list[Example]
    val: list[Example]
    test: list[Example]  # texts that mention a held-out entity
    test_seen: list[Example]  # a random share of the others: the in-distribution test
    held_out: list[str]  # IRIs of the held-out entities, sorted
    mentions: list[list[str]]  # IRIs linked in each input example (input order)


def held_out_entity_split(
    examples: Sequence[Example],
    mentions: Sequence[Sequence[str]],
    fraction: float,
    seed: int = 0,
    val_fraction: float = 0.1,
    candidates: set[str] | None = None,
    seen_fraction: float = 0.0,
) -> EntitySplit:
    """Split ``examples`` given the entity IRIs each one mentions.

    Args:
        fraction: share of the candidate entities to hold out.
        candidates: entities that may be held out (default: every linked entity).
        seen_fraction: share of the other texts set aside (stratified) as ``test_seen``.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1 (got {fraction})")
    linked = sorted({iri for m in mentions for iri in m if candidates is None or iri in candidates})
    if not linked:
        raise DataError(
            "no text mentions a candidate entity; check the KG, the linker settings or the --type filter"
        )
    rng = random.Random(seed)
    held = set(rng.sample(linked, max(1, round(len(linked) * fraction))))
    test = [e for e, m in zip(examples, mentions, strict=True) if held & set(m)]
    rest = [e for e, m in zip(examples, mentions, strict=True) if not held & set(m)]
    if not rest:
        raise DataError("every text mentions a held-out entity; lower --fraction")
    seen: list[Example] = []
    if seen_fraction > 0:
        rest, seen = stratified_split(rest, seen_fraction, seed + 1)
    train, val = stratified_split(rest, val_fraction, seed)
    return EntitySplit(train, val, test, seen, sorted(held), [list(m) for m in mentions])


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
            "held_out": len(split.held_out),
            "texts_with_links": sum(bool(m) for m in split.mentions),
            "labels_only_in_test": labels_only_in_test(split),
        }
        (tmp / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
