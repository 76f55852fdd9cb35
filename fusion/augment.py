"""Mention swap: copies of training texts rewritten about another entity of the same type.

A training text qualifies when its class is a function of one entity it mentions: that entity's
label facts (triples between it and a class's label node) name exactly one class, the text's
own, and no other entity of the text has label facts. Its copy names, in every place the text
named the entity, another entity of the same ``rdf:type`` whose label facts name exactly one
class, and takes that class as its label. The rest of the text is unchanged, so the text
branch learns that the words around a name do not decide the class, and the graph does.
Texts whose class is not a function of an entity (a symptom with several diseases) are left
out: no label could be kept honestly.

Replacements are drawn only among the entities training texts mention, never validation's
held-out ones and never an entity only a test could name: the swap recombines what training
sees and brings in no new name. A copy stands for an entity new to the model, so its own label
facts are hidden, as for a masked training text.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from fusion.auto import label_facts
from fusion.resources import Prepared, Resources


def swap_mentions(
    resources: Resources,
    train: Sequence[Prepared],
    rate: float,
    seed: int,
    hidden: AbstractSet[int] = frozenset(),
) -> list[Prepared]:
    """One swapped copy for each qualifying text (module doc), drawn with probability
    ``rate``; [] without label nodes or a compiled KG."""
    graph = resources.graph.compiled
    if rate <= 0 or not resources.label_nodes or graph is None:
        return []
    position = {e: j for j, e in enumerate(resources.label_nodes)}
    classes = {
        e: label_facts(graph, e, position)
        for p in train
        for e in p.linked
        if e not in position and e not in hidden
    }
    pool: dict[int, list[int]] = {}  # rdf:type -> entities with one class, in id order
    for e in sorted(classes):
        if len(classes[e]) == 1:
            for kind in graph.types_of(e) or [-1]:
                pool.setdefault(kind, []).append(e)
    draw = random.Random(seed)
    texts: list[str] = []
    labels: list[int] = []
    spans: list[list[dict[str, Any]]] = []
    for p in train:
        holders = [e for e in p.linked if classes.get(e)]
        if len(holders) != 1 or classes[holders[0]] != {p.label} or draw.random() >= rate:
            continue
        entity = holders[0]
        options = sorted({o for k in graph.types_of(entity) or [-1] for o in pool.get(k, [])})
        options = [o for o in options if o != entity and graph.label(o)]
        if not options:
            continue
        other = draw.choice(options)
        text, moved = _rename(
            p.text, p.spans, graph.iri(entity), graph.iri(other), graph.label(other)
        )
        texts.append(text)
        labels.append(next(iter(classes[other])))
        spans.append(moved)
    if not texts:
        return []
    return resources.prepare(
        texts, labels, mask_label_facts=[True] * len(texts), spans=spans, hidden=hidden
    )


def _rename(
    text: str, spans: Sequence[dict[str, Any]], old: str, new: str, name: str
) -> tuple[str, list[dict[str, Any]]]:
    """``text`` with every span linked to ``old`` replaced by ``name`` (linked to ``new``),
    and every span's offsets moved to match."""
    pieces, moved, cursor, shift = [], [], 0, 0
    for span in sorted(spans, key=lambda s: int(s["start"])):
        start, end = int(span["start"]), int(span["end"])
        pieces.append(text[cursor:start])
        if span["iri"] == old:
            record = {**span, "text": name, "iri": new, "candidates": [{"iri": new, "score": 1.0}]}
            record.update(start=start + shift, end=start + shift + len(name))
            pieces.append(name)
            shift += len(name) - (end - start)
        else:
            record = {**span, "start": start + shift, "end": end + shift}
            pieces.append(text[start:end])
        moved.append(record)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), moved
