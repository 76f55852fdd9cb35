"""`KnowledgeGraph`: the compiled, immutable integer index every other layer queries.

Entities and relations have dense ids sorted by IRI. Adjacency is CSR with an inverse edge per
triple, so a row lists everything an entity touches in either direction. Labels, aliases,
descriptions, types and other literal attributes are kept beside it, by entity id.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kg.config import KGConfig
from kg.csr import csr_entries
from kg.errors import AmbiguousEntityError, EntityNotFoundError, KGStoreError
from kg.graph_path import GraphPath
from kg.paths import top_k_paths
from kg.protocol import (
    check_count,
    check_entity,
    check_name,
    check_relation,
    describe_triple,
)
from kg.search import EntityMatch, LabelIndex
from kg.storage import (
    ARRAY_FIELDS,
    INDEX_FILE,
    META_FILE,
    STRING_FIELDS,
    read_graph_folder,
    rebuild_hint,
    save_graph,
)
from kg.strings import StringTable
from kg.subgraph import Subgraph, compiled_k_hop_subgraph, induced_triples
from kg.values import Neighbor, Triple, humanize, local_name

# re-exported: many modules import these from here
__all__ = [
    "ARRAY_FIELDS",
    "STRING_FIELDS",
    "KnowledgeGraph",
    "Neighbor",
    "Triple",
    "csr_entries",
    "describe_triple",
    "humanize",
    "load_graph",
    "local_name",
]


@dataclass(eq=False)
class KnowledgeGraph:
    """A compiled knowledge graph. Build one with `kg.load`, reload one with `kg.open`.

    Ids: entity ``0..num_entities-1`` and relation ``0..num_relations-1``, both sorted by IRI.
    In ``edge_relations`` a value ``r >= num_relations`` marks the inverse of ``r - num_relations``.
    """

    entities: StringTable  # entity IRIs; blank nodes as "_:<file tag>b<n>"
    relations: StringTable  # predicate IRIs of entity-to-entity triples
    relation_names: StringTable  # names given by delimited files ("" for RDF predicates)
    indptr: np.ndarray  # int64 [num_entities + 1]: CSR row pointers
    neighbors: np.ndarray  # int32 [2 * num_triples]: CSR columns
    edge_relations: np.ndarray  # int32 [2 * num_triples]: relation of each CSR entry
    labels: StringTable  # display label per entity ("" when none)
    alias_indptr: np.ndarray  # int64 [num_entities + 1]
    aliases: StringTable  # every label and alias, the display label first
    descriptions: StringTable  # description text per entity ("" when none)
    type_indptr: np.ndarray  # int64 [num_entities + 1]
    type_ids: np.ndarray  # int32: entity ids of each entity's types
    attribute_indptr: np.ndarray  # int64 [num_entities + 1]
    attribute_predicates: StringTable
    attribute_values: StringTable
    attribute_datatypes: StringTable  # datatype IRI, or "@<lang>"
    config: KGConfig = field(default_factory=KGConfig)
    sources: list[str] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, repr=False)
    _label_index: LabelIndex | None = field(default=None, repr=False)
    _out_end: np.ndarray | None = field(default=None, repr=False)
    _scratch: threading.local = field(default_factory=threading.local, repr=False)

    # ----- sizes -----
    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def num_triples(self) -> int:
        """Entity-to-entity triples (the graph's edges), without their inverses."""
        return len(self.neighbors) // 2

    def description_lengths(self) -> np.ndarray:
        return np.diff(self.descriptions.offsets)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the compiled content: equal graphs give equal fingerprints."""
        if self._fingerprint is None:
            self._fingerprint = self.compute_fingerprint()
        return self._fingerprint

    def compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        for name in ARRAY_FIELDS:
            a = getattr(self, name)
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(np.ascontiguousarray(a).data)
        for name in STRING_FIELDS:
            t: StringTable = getattr(self, name)
            h.update(f"{name}:{len(t)}".encode())
            h.update(t.offsets.data)
            h.update(t.blob.data)
        h.update(repr(sorted(self.config.to_dict().items())).encode())
        return h.hexdigest()

    @property
    def source(self) -> str:
        """The triples files the graph was compiled from."""
        return ", ".join(self.sources) or "a graph built in memory"

    @property
    def compiled(self) -> KnowledgeGraph:
        """This graph: it is whole in-memory arrays (see `kg.protocol.Graph.compiled`)."""
        return self

    @property
    def names_graph(self) -> KnowledgeGraph:
        """This graph: it holds its names itself (see `kg.protocol.Graph.names_graph`)."""
        return self

    # ----- entities -----
    def entity_id(self, iri: str) -> int:
        """Id of the entity with this exact IRI; raises `EntityNotFoundError`."""
        return _row_of(self.entities, check_name("entity_id", iri), "entity")

    def _entity(self, entity: int) -> int:
        """``entity``, checked: an int id in range (`kg.protocol.check_entity`)."""
        if type(entity) is int and 0 <= entity < len(self.entities.offsets) - 1:
            return entity  # the common case, without a call
        return check_entity(entity, self.num_entities)

    def has_entity(self, iri: str) -> bool:
        return self.entities.find_sorted(iri) >= 0

    def iri(self, entity: int) -> str:
        return self.entities[self._entity(entity)]

    def label(self, entity: int) -> str:
        """Display label; the IRI's local name when the KG gives none."""
        entity = self._entity(entity)
        return self.labels[entity] or local_name(self.entities[entity])

    def aliases_of(self, entity: int) -> list[str]:
        entity = self._entity(entity)
        lo, hi = self.alias_indptr[entity], self.alias_indptr[entity + 1]
        return [self.aliases[j] for j in range(int(lo), int(hi))]

    def names(self, entity: int) -> list[str]:
        """What the entity may be called in text: its aliases, else its humanized local name
        ("joint_pain" -> "joint pain") when the KG gives it no label."""
        return self.aliases_of(entity) or [humanize(local_name(self.iri(entity)))]

    def description(self, entity: int) -> str:
        return self.descriptions[self._entity(entity)]

    def text(self, entity: int) -> str:
        """The entity's text for encoders: label, then its description."""
        desc = self.description(entity)
        return f"{self.label(entity)}. {desc}" if desc else self.label(entity)

    def types_of(self, entity: int) -> list[int]:
        entity = self._entity(entity)
        lo, hi = self.type_indptr[entity], self.type_indptr[entity + 1]
        return self.type_ids[lo:hi].tolist()

    def attributes_of(self, entity: int) -> list[tuple[str, str, str]]:
        """``(predicate IRI, value, datatype IRI or "@lang")`` for non-label literals."""
        entity = self._entity(entity)
        lo, hi = int(self.attribute_indptr[entity]), int(self.attribute_indptr[entity + 1])
        return [
            (self.attribute_predicates[j], self.attribute_values[j], self.attribute_datatypes[j])
            for j in range(lo, hi)
        ]

    def resolve(self, ref: str) -> int:
        """An entity from an IRI or a label (case-insensitive); raises if none or several."""
        check_name("resolve", ref, "an IRI or a label (a string)")
        i = self.entities.find_sorted(ref)
        if i >= 0:
            return i
        hits = self.label_index.exact(ref)
        if len(hits) == 1:
            return hits[0]
        if not hits:
            hint = ""
            near = self.search(ref, limit=3)
            if near:
                hint = "; did you mean " + ", ".join(repr(m.label) for m in near) + "?"
            raise EntityNotFoundError(f"no entity has the IRI or label {ref!r}{hint}")
        listed = ", ".join(f"{self.iri(h)} ({self.label(h)})" for h in hits[:5])
        raise AmbiguousEntityError(
            f"{ref!r} names {len(hits)} entities: {listed}; pass one of their IRIs instead"
        )

    # ----- relations -----
    def relation_id(self, iri: str) -> int:
        """Id of the relation with this exact IRI; raises `EntityNotFoundError`."""
        return _row_of(self.relations, check_name("relation_id", iri), "relation")

    def relation_iri(self, relation: int) -> str:
        return self.relations[self._relation(relation) % max(1, self.num_relations)]

    def _relation(self, relation: int) -> int:
        """``relation``, checked: an int id of a relation or of its inverse (``r + R``)."""
        R = self.num_relations
        if type(relation) is int and 0 <= relation < 2 * R:
            return relation
        return check_relation(relation, R)

    def relation_label(self, relation: int) -> str:
        """Readable name of a relation (ids ``>= num_relations`` are inverses: "~name")."""
        relation = self._relation(relation)
        base = relation % max(1, self.num_relations)
        iri = self.relations[base]
        name = self.relation_names[base]
        if not name:
            e = self.entities.find_sorted(iri)
            name = self.labels[e] if e >= 0 and self.labels[e] else humanize(local_name(iri))
        return name if relation < self.num_relations else f"~{name}"

    # ----- structure -----
    def degree(self, entity: int) -> int:
        entity = self._entity(entity)
        return int(self.indptr[entity + 1] - self.indptr[entity])

    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def out_end(self) -> np.ndarray:
        """End of each row's outgoing entries: a row lists relations ``< R`` (outgoing) first."""
        if self._out_end is None:
            rows = np.repeat(np.arange(self.num_entities), np.diff(self.indptr))
            outgoing = np.bincount(
                rows[self.edge_relations < self.num_relations], minlength=self.num_entities
            )
            self._out_end = self.indptr[:-1] + outgoing
        return self._out_end

    @contextmanager
    def position_table(self) -> Iterator[np.ndarray]:
        """A per-thread int64 array of -1s, one slot per entity, for O(1) membership tests.
        The caller must set back to -1 every slot it wrote."""
        table = getattr(self._scratch, "positions", None)
        if table is None:
            table = self._scratch.positions = np.full(self.num_entities, -1, dtype=np.int64)
        yield table

    def neighbors_of(self, entity: int) -> list[Neighbor]:
        """Every edge touching ``entity``, in either direction, sorted by relation then node."""
        entity = self._entity(entity)
        lo, hi = int(self.indptr[entity]), int(self.indptr[entity + 1])
        R = self.num_relations
        return [
            Neighbor(r if r < R else r - R, n, r < R)
            for r, n in zip(
                self.edge_relations[lo:hi].tolist(), self.neighbors[lo:hi].tolist(), strict=True
            )
        ]

    def edge_entries(self, entities: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """Each entity's CSR row: ``(relation, neighbour)`` for every edge, the relation
        ``r + num_relations`` for an incoming one, sorted by relation then neighbour."""
        out: dict[int, list[tuple[int, int]]] = {}
        for e in entities:
            lo, hi = int(self.indptr[e]), int(self.indptr[e + 1])
            rows = zip(
                self.edge_relations[lo:hi].tolist(), self.neighbors[lo:hi].tolist(), strict=True
            )
            out[int(e)] = list(rows)
        return out

    def degrees_of(self, entities: Sequence[int]) -> np.ndarray:
        """int64 [len(entities)]: the degree of each entity (a self-loop counts twice)."""
        e = np.asarray(entities, dtype=np.int64)
        return (self.indptr[e + 1] - self.indptr[e]).astype(np.int64)

    def links_to(self, entities: Sequence[int], targets: Sequence[int]) -> dict[int, set[int]]:
        """Which of ``targets`` each entity shares a triple with (either direction)."""
        wanted = {int(t) for t in targets}
        out: dict[int, set[int]] = {}
        for e in entities:
            lo, hi = int(self.indptr[e]), int(self.indptr[e + 1])
            out[int(e)] = wanted.intersection(self.neighbors[lo:hi].tolist())
        return out

    def triples_among(self, nodes: Sequence[int]) -> list[Triple]:
        """Every triple between two of ``nodes`` (distinct), by subject in their order, then
        relation, then object."""
        ids = np.asarray(nodes, dtype=np.int64)
        edge_index, edge_type = induced_triples(self, ids)
        s, o = ids[edge_index[0]].tolist(), ids[edge_index[1]].tolist()
        return [Triple(*t) for t in zip(s, edge_type.tolist(), o, strict=True)]

    def triples(self) -> Iterator[Triple]:
        """Every entity-to-entity triple once, sorted by subject, relation, object."""
        R = self.num_relations
        for s in range(self.num_entities):
            lo, hi = int(self.indptr[s]), int(self.indptr[s + 1])
            for r, o in zip(
                self.edge_relations[lo:hi].tolist(), self.neighbors[lo:hi].tolist(), strict=True
            ):
                if r < R:
                    yield Triple(s, r, o)

    def describe_triple(self, t: Triple) -> dict[str, dict[str, str]]:
        """A triple as JSON-ready IRIs and labels."""
        return describe_triple(self, t)

    def has_triple(self, subject: int, relation: int, obj: int) -> bool:
        subject, relation, obj = self._entity(subject), self._relation(relation), self._entity(obj)
        lo, hi = int(self.indptr[subject]), int(self.indptr[subject + 1])
        rows = (self.edge_relations[lo:hi] == relation) & (self.neighbors[lo:hi] == obj)
        return bool(rows.any())

    # ----- queries (implemented in their own modules) -----
    @property
    def label_index(self) -> LabelIndex:
        if self._label_index is None:
            self._label_index = LabelIndex(self)
        return self._label_index

    def search(self, query: str, limit: int = 10) -> list[EntityMatch]:
        """Entities named like ``query``: exact (case-insensitive) first, then fuzzy."""
        check_name("search", query)
        return self.label_index.search(query, limit=check_count("limit", limit, 0))

    def subgraph(self, seeds: Iterable[int], hops: int = 2, max_nodes: int = 128) -> Subgraph:
        """`kg.subgraph.k_hop_subgraph`, by its vectorised CSR form."""
        return compiled_k_hop_subgraph(self, seeds, hops=hops, max_nodes=max_nodes)

    def paths(self, source: int, target: int, k: int = 5, max_hops: int = 3) -> list[GraphPath]:
        return top_k_paths(self, source, target, k=k, max_hops=max_hops)

    # ----- storage -----
    def save(self, directory: str | Path) -> Path:
        return save_graph(self, directory)

    def stats(self) -> dict[str, object]:
        deg = self.degrees()
        return {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "triples": self.num_triples,
            "labelled entities": int((np.diff(self.labels.offsets) > 0).sum()),
            "aliases": len(self.aliases),
            "described entities": int((self.description_lengths() > 0).sum()),
            "typed entities": int((np.diff(self.type_indptr) > 0).sum()),
            "attributes": len(self.attribute_values),
            "mean degree": round(float(deg.mean()), 2) if len(deg) else 0.0,
            "max degree": int(deg.max()) if len(deg) else 0,
            "fingerprint": self.fingerprint[:16],
        }

    def __repr__(self) -> str:
        return (
            f"KnowledgeGraph(entities={self.num_entities}, relations={self.num_relations}, "
            f"triples={self.num_triples})"
        )


def _row_of(table: StringTable, iri: str, what: str) -> int:
    """The row of ``iri`` in a sorted table of IRIs; `EntityNotFoundError` naming ``what``."""
    row = table.find_sorted(iri)
    if row < 0:
        raise EntityNotFoundError(f"no {what} with IRI {iri!r} in this KG")
    return row


def load_graph(directory: str | Path, verify: bool = True) -> KnowledgeGraph:
    """Load a folder written by `KnowledgeGraph.save` (`kg.open`).

    Args:
        verify: recompute the fingerprint and refuse a folder whose content does not match it.

    Raises:
        KGStoreError: naming the missing or corrupt file and how to rebuild it.
    """
    fields, meta = read_graph_folder(directory)
    kg = KnowledgeGraph(
        **fields,
        config=KGConfig.from_dict(meta.get("config", {})),
        sources=list(meta.get("sources", [])),
        _fingerprint=meta.get("fingerprint"),
    )
    if verify and kg.compute_fingerprint() != meta.get("fingerprint"):
        raise KGStoreError(
            f"{Path(directory) / INDEX_FILE} does not match the fingerprint in {META_FILE} "
            f"(corrupt?); {rebuild_hint(Path(directory))}"
        )
    return kg
