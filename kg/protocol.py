"""`Graph`: everything nlp, fusion and api read of a knowledge graph, whichever backend holds it.

Two classes implement it: `kg.graph.KnowledgeGraph` (compiled, in memory) and
`kg.store_graph.StoreGraph` (over a `kg.triplestore.TripleStore`, fetched as needed). The
algorithms (k-hop subgraphs in kg/subgraph.py, paths in kg/paths.py, label counts,
disambiguation) are written once against it; a backend overrides one only for speed, and a
parity test (tests/test_graph_parity.py) shows the override equal to the shared algorithm. Code
outside kg/ asks a capability (`Graph.compiled`) where a backend differs, never which class it
holds.

Ids: entities ``0..num_entities-1``, relations ``0..num_relations-1`` sorted by IRI (the same
relation ids on both backends); in a CSR row, relation ``r + num_relations`` marks an incoming
edge of relation ``r``. A compiled graph numbers entities by IRI, a store as it meets them, so
an algorithm that breaks ties between entities compares their IRIs.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from kg.errors import EntityNotFoundError
from kg.values import Neighbor, Triple

if TYPE_CHECKING:
    from kg.graph import KnowledgeGraph
    from kg.graph_path import GraphPath
    from kg.search import EntityMatch
    from kg.subgraph import Subgraph


class Graph(Protocol):
    """A knowledge graph as the model code reads it (see the module docstring)."""

    # ----- identity, sizes and capabilities -----
    @property
    def num_entities(self) -> int:
        """Entities with an id (a store: those met so far; it may hold more)."""

    @property
    def num_relations(self) -> int: ...

    @property
    def fingerprint(self) -> str:
        """Equal for equal graphs (a store: for the same reference)."""

    @property
    def source(self) -> str:
        """Where the graph comes from, for messages: a store's URL or folder, a compiled
        graph's triples files."""

    @property
    def compiled(self) -> KnowledgeGraph | None:
        """The graph as whole in-memory arrays, when it is one; None for a store. What needs
        the whole CSR (walks, the paths encoder, shuffled controls) or adds triples (hot
        triples: a store is read, never written) asks this."""

    @property
    def names_graph(self) -> KnowledgeGraph:
        """A compiled graph of every entity's names and types, what the linker indexes (a
        compiled graph is its own; a store exports its names in pages, on first use). Its
        ids are its own: go through IRIs to this graph's."""

    def stats(self) -> dict[str, object]: ...
    def save(self, directory: str | Path) -> Path: ...

    # ----- entities -----
    def entity_id(self, iri: str) -> int: ...
    def has_entity(self, iri: str) -> bool: ...
    def resolve(self, ref: str) -> int:
        """An entity from an IRI or a label (case-insensitive); raises if none or several."""

    def search(self, query: str, limit: int = 10) -> list[EntityMatch]: ...
    def iri(self, entity: int) -> str: ...
    def label(self, entity: int) -> str: ...
    def aliases_of(self, entity: int) -> list[str]: ...
    def names(self, entity: int) -> list[str]: ...
    def description(self, entity: int) -> str: ...
    def text(self, entity: int) -> str: ...
    def types_of(self, entity: int) -> list[int]: ...
    def attributes_of(self, entity: int) -> list[tuple[str, str, str]]:
        """``(predicate IRI, value, datatype IRI or "@lang")`` for non-name literals, sorted."""

    # ----- relations -----
    def relation_id(self, iri: str) -> int: ...
    def relation_iri(self, relation: int) -> str: ...
    def relation_label(self, relation: int) -> str: ...

    # ----- structure -----
    def degree(self, entity: int) -> int: ...
    def neighbors_of(self, entity: int) -> list[Neighbor]: ...
    def edge_entries(self, entities: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """Each entity's CSR row, ``(relation, neighbour)``, sorted by relation then IRI."""

    def degrees_of(self, entities: Sequence[int]) -> np.ndarray:
        """int64 [len(entities)]: whole-graph degrees (a self-loop counts twice)."""

    def links_to(self, entities: Sequence[int], targets: Sequence[int]) -> dict[int, set[int]]:
        """Which of ``targets`` each entity shares a triple with (either direction)."""

    def triples_among(self, nodes: Sequence[int]) -> list[Triple]:
        """Every triple between two of ``nodes`` (distinct): by subject in the order of
        ``nodes``, then relation, then object IRI. One request for a store, which asks only
        for the edges between them (not all of a hub's)."""

    def has_triple(self, subject: int, relation: int, obj: int) -> bool: ...
    def describe_triple(self, t: Triple) -> dict[str, dict[str, str]]: ...

    # ----- algorithms (kg/subgraph.py, kg/paths.py) -----
    def subgraph(self, seeds: Iterable[int], hops: int = 2, max_nodes: int = 128) -> Subgraph: ...
    def paths(self, source: int, target: int, k: int = 5, max_hops: int = 3) -> list[GraphPath]: ...


def entity_index(entity: object, what: str = "entity") -> int:
    """``entity`` as an int; a `TypeError` with the fix when it is not an integer.

    Args:
        what: "entity" or "relation": which kind of id, for the message and its fix.
    """
    try:
        return operator.index(entity)  # type: ignore[arg-type]  # an int, numpy or torch int
    except TypeError:
        lookup = "graph.resolve" if what == "entity" else "graph.relation_id"
        fix = f"; turn a name into one with {lookup}({entity!r})" if isinstance(entity, str) else ""
        raise TypeError(
            f"{what} ids are ints, not {type(entity).__name__} {entity!r}{fix}"
        ) from None


def check_entity(entity: object, num_entities: int) -> int:
    """``entity`` as an int id of a graph with ``num_entities`` entities.

    Raises:
        TypeError: ``entity`` is not an integer (a name, a float, None...), with the fix.
        EntityNotFoundError: it is out of range, negative ids included (they would silently
            count from the end).
    """
    i = entity_index(entity)
    if not 0 <= i < num_entities:
        raise EntityNotFoundError(
            f"entity id {i} is out of range: the KG has {num_entities} entities, ids 0 to "
            f"{num_entities - 1}; find one with graph.resolve(name) or graph.search(text)"
        )
    return i


def check_relation(relation: object, num_relations: int) -> int:
    """``relation`` as an int id of a relation (``0..R-1``) or of its inverse (``R..2R-1``).

    Raises:
        TypeError: it is not an integer.
        EntityNotFoundError: it is out of range.
    """
    r = entity_index(relation, "relation")
    if not 0 <= r < 2 * num_relations:
        R = num_relations
        raise EntityNotFoundError(
            f"relation id {r} is out of range: the KG has {R} relations, ids 0 to {R - 1} "
            f"({R} to {2 * R - 1} for their inverses)"
        )
    return r


def check_count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``: a size such as ``k``, ``hops`` or ``limit``.

    Raises:
        TypeError: it is not an integer (a string such as "3" included).
        ValueError: it is below ``minimum``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__} {value!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {n})")
    return n


def check_name(what: str, value: object, takes: str = "a string") -> str:
    """Refuse, as a `TypeError` with the fix, a name or IRI to look up that is not a string
    (``takes`` says what ``what`` takes, e.g. "an IRI or a label (a string)")."""
    if not isinstance(value, str):
        raise TypeError(
            f"{what} takes {takes}, not {type(value).__name__} {value!r}"
            + ("; an entity id needs no look-up" if isinstance(value, int) else "")
        )
    return value


def describe_triple(graph: Graph, t: Triple) -> dict[str, dict[str, str]]:
    """A triple as JSON-ready IRIs and labels."""
    return {
        "subject": {"iri": graph.iri(t.subject), "label": graph.label(t.subject)},
        "predicate": {
            "iri": graph.relation_iri(t.relation),
            "label": graph.relation_label(t.relation),
        },
        "object": {"iri": graph.iri(t.object), "label": graph.label(t.object)},
    }
