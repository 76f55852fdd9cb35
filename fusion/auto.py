"""Settings kgfuse chooses itself (``auto`` in a config), from the KG and the training texts.

Each rule reads the KG, the label nodes and the training texts' links, never a test file, and
returns its choice with the figures behind it, which training prints and the bundle keeps.

- `holdout_candidates`: which entities validation holds out. Texts are mostly *about* entities
  of one kind (a species, a product model, a symptom); holding out those is what "an entity no
  training text names" means to a user. The kind is the ``rdf:type`` that the most training
  texts mention; without types, every linked entity that is not a label node.
- `label_facts_restate_labels`: whether the KG's label facts (triples between an entity and a
  class's label node) restate the labels. When nearly every entity a training text mentions
  that has label facts has exactly one, naming that text's own label (pokedex: "Squirtle
  has_primary_type water"), the fact *is* the answer: it was written for known entities, and an
  entity new to the model comes without it (had it one, there would be nothing to predict). So
  training hides each text's own label facts and validation does too, or the model learns a
  lookup that new entities cannot use (``train.mask_label_facts: auto`` -> 1.0). When the facts
  relate an entity to several classes (symptom2disease: a symptom has several diseases), they
  are knowledge that a new entity has too (-> 0.0).
- Hops are chosen on validation by the reference model (`fusion.reference.choose_hops`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kg.graph import KnowledgeGraph
from kg.protocol import Graph

RESTATE_SHARE = 0.8  # label facts restate the labels when this share of holders name just it
MIN_HOLDERS, MIN_HOLDER_SHARE = 10, 0.05  # fewer holders (absolute, per text) decide nothing


@dataclass(frozen=True)
class Choice:
    """An automatic setting: its value and why, in words and figures."""

    value: object
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "reason": self.reason}


def holdout_candidates(
    graph: Graph,
    label_nodes: Sequence[int],
    linked: Sequence[Sequence[int]],
    types: Sequence[str] = (),
) -> tuple[set[int], str]:
    """Entity ids validation may hold out, and a phrase naming them (see the module doc).

    ``types``: type IRIs given by the user (``data.holdout_types``), used as they are."""
    labels = set(label_nodes)
    mentioned = {e for m in linked for e in m if e not in labels}
    if types:
        wanted = {graph.entity_id(t) for t in types}
        chosen = {e for e in mentioned if wanted.intersection(graph.types_of(e))}
        return chosen, "entities of type " + ", ".join(types)
    texts_per_type: Counter[int] = Counter()
    for m in linked:
        texts_per_type.update({t for e in m if e not in labels for t in graph.types_of(e)})
    if not texts_per_type:
        return mentioned, "every linked entity (the KG has no rdf:type)"
    kind, _ = max(texts_per_type.items(), key=lambda kv: (kv[1], -kv[0]))
    chosen = {e for e in mentioned if kind in graph.types_of(e)}
    name = graph.label(kind) or graph.iri(kind)
    return chosen, f"entities of type {name!r}, the kind the most training texts mention"


def label_facts(graph: KnowledgeGraph, entity: int, position: dict[int, int]) -> set[int]:
    """The classes whose label node ``entity`` shares a triple with (``position``: label node
    id -> class index)."""
    ends = graph.neighbors[graph.indptr[entity] : graph.indptr[entity + 1]].tolist()
    return {position[n] for n in ends if n in position}


def label_facts_restate_labels(
    graph: KnowledgeGraph,
    label_nodes: Sequence[int],
    linked: Sequence[Sequence[int]],
    gold: Sequence[int],
) -> Choice:
    """``train.mask_label_facts`` for ``auto``: 1.0 when the KG's label facts restate the
    training labels, else 0.0 (see the module doc).

    Args:
        linked: the entity ids each training text mentions.
        gold: each training text's class index (into ``label_nodes``).
    """
    position = {e: j for j, e in enumerate(label_nodes)}
    pairs = restating = 0
    for entities, label in zip(linked, gold, strict=True):
        for e in dict.fromkeys(entities):
            if e in position:
                continue
            facts = label_facts(graph, e, position)
            if facts:
                pairs += 1
                restating += facts == {label}
    if pairs < max(MIN_HOLDERS, MIN_HOLDER_SHARE * len(gold)):
        return Choice(
            0.0,
            f"{pairs} entities that training texts mention have label facts: "
            "too few to matter; kept",
        )
    share = restating / pairs
    figures = (
        f"{share:.0%} of the {pairs} label-fact holders that training texts mention have one "
        "label fact, naming the text's own label"
    )
    if share >= RESTATE_SHARE:
        return Choice(
            1.0,
            f"{figures}: the facts restate the labels, which an entity new to "
            "the model will not have; each training text's own label facts are hidden",
        )
    return Choice(0.0, f"{figures}: the facts are knowledge that new entities have too; kept")
