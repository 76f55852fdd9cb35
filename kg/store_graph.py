"""`StoreGraph`: a triple store as a `kg.protocol.Graph`, so that models train and serve over
a KG they cannot load.

It wraps a `TripleStore` (kg/triplestore.py: reads by IRI, with caches) and numbers entities as
it first meets them (interning), so the code written against the protocol (integer ids,
subgraphs, labels, paths, counts) runs unchanged over a SPARQL endpoint or an on-disk Oxigraph
store: the algorithms are the shared ones, over the batched `edge_entries`, `degrees_of` and
`triples_among` (one store request each). Relation ids are fixed at creation: the store's
predicates between entities sorted by IRI, as the compiler numbers them, so a model sees the
same relation ids over the store as over the triples compiled.

    graph = StoreGraph.connect("http://localhost:7878/query")
    e = graph.resolve("Influenza")
    sub = graph.subgraph([e], hops=2, max_nodes=64)      # what KnowledgeGraph.subgraph keeps

What it holds in memory: the interned IRIs with the names, descriptions and types fetched for
them, the store's LRU caches, and (`names_graph`, built on first use) a compiled KG of every
entity's labels, aliases and types, fetched in pages: the linker's index. Saved (`save`), a
StoreGraph is a reference, not a copy (kg/store_reference.py). Blank nodes are not followed
(see kg/triplestore.py), so a KG with blank nodes differs from its compiled form there. The
store is read, never written: add triples to the store itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kg.config import KGConfig
from kg.errors import EntityNotFoundError
from kg.graph import KnowledgeGraph, load_graph
from kg.graph_path import GraphPath
from kg.paths import top_k_paths
from kg.protocol import (
    Graph,
    check_count,
    check_name,
    check_relation,
    describe_triple,
    entity_index,
)
from kg.search import EntityMatch
from kg.store_names import describe, names_graph
from kg.store_reference import StoreReference, is_store_reference
from kg.subgraph import Subgraph, k_hop_subgraph, seed_ids
from kg.triplestore import TripleStore
from kg.values import Neighbor, Triple, humanize, local_name


@dataclass(frozen=True)
class EntityInfo:
    label: str  # "" when the store gives none
    aliases: list[str]
    description: str
    types: list[str]  # type IRIs


class StoreGraph:
    """The `Graph` protocol over a `TripleStore` (see the module docstring).

    Args:
        store: the store to read.
        relations: relation IRIs in id order; by default the store's, sorted.
        entities: IRIs to intern first, in order (a saved graph's, so ids stay stable).
        names: the names KG, when already built.
    """

    def __init__(
        self,
        store: TripleStore,
        relations: Sequence[str] | None = None,
        entities: Sequence[str] = (),
        names: KnowledgeGraph | None = None,
    ):
        self.store = store
        self.config = store.config
        self._relations = list(relations) if relations is not None else store.relations()
        self._relation_ids = {iri: r for r, iri in enumerate(self._relations)}
        self._relation_labels: list[str] | None = None
        self._iris: list[str] = []
        self._ids: dict[str, int] = {}
        self._info: dict[int, EntityInfo] = {}
        self._names = names
        self._lock = threading.RLock()  # the API reads the KG from several threads
        for iri in entities:
            self._intern(iri)

    @classmethod
    def connect(
        cls, source: str | Path, config: KGConfig | None = None, **store: Any
    ) -> StoreGraph:
        """The graph of the endpoint URL or store folder ``source`` (options: `TripleStore`)."""
        return cls(TripleStore(source, config, **store))

    def __repr__(self) -> str:
        return (
            f"StoreGraph({self.source!r}, relations={self.num_relations}, seen={self.num_entities})"
        )

    # ----- identity and sizes -----
    @property
    def source(self) -> str:
        return self.store.source

    @property
    def backend(self) -> str:
        return "sparql" if self.store.client.is_http else "oxigraph"

    @property
    def compiled(self) -> None:
        """None: a store is not whole in memory, and kgfuse reads it, never writes it."""
        return None

    @property
    def num_entities(self) -> int:
        """Entities interned so far (the store may hold many more)."""
        return len(self._iris)

    @property
    def num_relations(self) -> int:
        return len(self._relations)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the source, the KG config and the relation ids. A store changes under
        its URL, so this names the reference, not the triples behind it."""
        h = hashlib.sha256(f"store:{self.source}\n".encode())
        h.update(repr(sorted(self.config.to_dict().items())).encode())
        h.update("\n".join(self._relations).encode())
        return h.hexdigest()

    def stats(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "source": self.source,
            "relations": self.num_relations,
            "entities seen": self.num_entities,
            "cached entities": self.store.cached_entities,
            "fingerprint": self.fingerprint[:16],
        }

    def clear_cache(self) -> None:
        """Forget what was fetched (edges, degrees, names and types), keeping the ids and the
        names graph: the next request goes to the store again (a cold start, a changed store)."""
        with self._lock:
            self.store.clear_cache()
            self._info.clear()
            self._relation_labels = None

    # ----- entities -----
    def _intern(self, iri: str) -> int:
        e = self._ids.get(iri)
        if e is None:
            e = self._ids[iri] = len(self._iris)
            self._iris.append(iri)
        return e

    def entity_id(self, iri: str) -> int:
        """The id of ``iri``, given now if it is new. Ids come from the store's own answers or
        the names index; `resolve` checks an IRI from elsewhere."""
        check_name("entity_id", iri)
        with self._lock:
            return self._intern(iri)

    def has_entity(self, iri: str) -> bool:
        with self._lock:
            return iri in self._ids or self.store.exists(iri)

    def resolve(self, ref: str) -> int:
        """An entity id from an IRI or a label (case-insensitive); raises if none or several."""
        check_name("resolve", ref, "an IRI or a label (a string)")
        with self._lock:
            return self._intern(self.store.resolve(ref))

    def iri(self, entity: int) -> str:
        entity = entity_index(entity)
        if not 0 <= entity < len(self._iris):
            raise EntityNotFoundError(f"entity id {entity} was never seen in {self.source}")
        return self._iris[entity]

    def _info_of(self, entity: int) -> EntityInfo:
        info = self._info.get(entity)
        if info is None:
            with self._lock:
                self._remember(describe(self.store, [self.iri(entity)]))
                info = self._info[entity]
        return info

    def _remember(self, small: KnowledgeGraph) -> list[int]:
        """Intern every entity of a small KG fetched from the store and keep its names; the
        ids, in the small KG's order."""
        ids = []
        for n in range(small.num_entities):
            e = self._intern(small.iri(n))
            ids.append(e)
            if e not in self._info:
                self._info[e] = EntityInfo(
                    small.labels[n],
                    small.aliases_of(n),
                    small.description(n),
                    [small.iri(t) for t in small.types_of(n)],
                )
        return ids

    def label(self, entity: int) -> str:
        """Display label; the IRI's local name when the store gives none."""
        return self._info_of(entity).label or local_name(self.iri(entity))

    def aliases_of(self, entity: int) -> list[str]:
        return list(self._info_of(entity).aliases)

    def names(self, entity: int) -> list[str]:
        """As `KnowledgeGraph.names`: its aliases, else its humanized local name."""
        return self.aliases_of(entity) or [humanize(local_name(self.iri(entity)))]

    def description(self, entity: int) -> str:
        return self._info_of(entity).description

    def text(self, entity: int) -> str:
        """The entity's text for encoders, as `KnowledgeGraph.text` writes it."""
        desc = self.description(entity)
        return f"{self.label(entity)}. {desc}" if desc else self.label(entity)

    def types_of(self, entity: int) -> list[int]:
        types = self._info_of(entity).types
        with self._lock:
            return [self._intern(t) for t in types]

    def attributes_of(self, entity: int) -> list[tuple[str, str, str]]:
        """As `KnowledgeGraph.attributes_of`: the literals that are not names or descriptions."""
        iri = self.iri(entity)
        with self._lock:
            return self.store.attributes(iri)

    # ----- relations -----
    def relation_id(self, iri: str) -> int:
        r = self._relation_ids.get(iri)
        if r is None:
            raise EntityNotFoundError(f"no relation with IRI {iri!r} among this graph's relations")
        return r

    def relation_iri(self, relation: int) -> str:
        relation = check_relation(relation, self.num_relations)
        return self._relations[relation % max(1, self.num_relations)]

    def relation_label(self, relation: int) -> str:
        """As `KnowledgeGraph.relation_label`: the predicate's label, or its humanized local name."""
        if self._relation_labels is None:
            with self._lock:
                small = describe(self.store, self._relations)
                self._relation_labels = [
                    small.labels[small.entity_id(iri)] or humanize(local_name(iri))
                    for iri in self._relations
                ]
        relation = check_relation(relation, self.num_relations)
        name = self._relation_labels[relation % max(1, self.num_relations)]
        return name if relation < self.num_relations else f"~{name}"

    def describe_triple(self, t: Triple) -> dict[str, dict[str, str]]:
        return describe_triple(self, t)

    # ----- structure -----
    def has_triple(self, subject: int, relation: int, obj: int) -> bool:
        return (relation, obj) in self.edge_entries([subject])[subject]

    def degree(self, entity: int) -> int:
        return int(self.degrees_of([entity])[0])

    def neighbors_of(self, entity: int) -> list[Neighbor]:
        """Every edge touching ``entity``, in the compiled graph's order (outgoing first, then
        by relation and node IRI)."""
        R = self.num_relations
        return [Neighbor(r % R, n, r < R) for r, n in self.edge_entries([entity])[entity]]

    def edge_entries(self, entities: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """Each entity's row of the compiled CSR: ``(relation, neighbour)`` for every edge,
        the relation ``r + num_relations`` for an incoming one, in the compiled order (by
        relation, then neighbour IRI). Edges of relations the graph does not know are left out."""
        iris = [self.iri(e) for e in entities]
        R = self.num_relations
        out: dict[int, list[tuple[int, int]]] = {}
        relation, ids = self._relation_ids, self._ids
        with self._lock:
            found = self.store.edges(iris)  # in the CSR's order: relation ids follow IRIs
            for e, iri in zip(entities, iris, strict=True):
                out[e] = [
                    (
                        relation[x.predicate] + (0 if x.outgoing else R),
                        ids[x.node] if x.node in ids else self._intern(x.node),
                    )
                    for x in found[iri]
                    if x.predicate in relation
                ]
        return out

    def triples_among(self, nodes: Sequence[int]) -> list[Triple]:
        """As `KnowledgeGraph.triples_among`: from the rows already fetched, and for the other
        nodes one request for their edges to ``nodes`` alone (a hub's thousands stay away)."""
        iris = [self.iri(n) for n in nodes]
        with self._lock:
            found = self.store.edges_among(iris, iris)
        id_of, relation = dict(zip(iris, nodes, strict=True)), self._relation_ids
        return [
            Triple(n, relation[x.predicate], id_of[x.node])
            for n, iri in zip(nodes, iris, strict=True)
            for x in found[iri]
            if x.predicate in relation
        ]

    def degrees_of(self, entities: Sequence[int]) -> np.ndarray:
        """int64 [len(entities)]: whole-store degrees."""
        iris = [self.iri(e) for e in entities]
        with self._lock:
            found = self.store.degrees(iris)
        return np.asarray([found[i] for i in iris], dtype=np.int64)

    def links_to(self, entities: Sequence[int], targets: Sequence[int]) -> dict[int, set[int]]:
        """Which of ``targets`` each entity shares a triple with (either direction)."""
        iris = [self.iri(e) for e in entities]
        target_iris = {self.iri(t): t for t in targets}
        with self._lock:
            found = self.store.label_links(iris, list(target_iris))
        return {
            e: {target_iris[t] for t in found[iri]} for e, iri in zip(entities, iris, strict=True)
        }

    def subgraph(self, seeds: Iterable[int], hops: int = 2, max_nodes: int = 128) -> Subgraph:
        """`kg.subgraph.k_hop_subgraph` over the store: one request for the seeds' degrees,
        one for each hop's edges and one for its candidates' degrees, one for the last hop's
        edges, and one for the names and types of the nodes it keeps (what a model reads)."""
        seeds = seed_ids(seeds)
        with self._lock:
            self.store.check_entities([self.iri(s) for s in seeds])
            sub = k_hop_subgraph(self, seeds, hops=hops, max_nodes=max_nodes)
            unnamed = [self.iri(n) for n in sub.nodes.tolist() if n not in self._info]
            if unnamed:
                self._remember(describe(self.store, unnamed))
        return sub

    def paths(self, source: int, target: int, k: int = 5, max_hops: int = 3) -> list[GraphPath]:
        """`kg.paths.top_k_paths` over the store."""
        return top_k_paths(self, source, target, k=k, max_hops=max_hops)

    # ----- names -----
    @property
    def names_graph(self) -> KnowledgeGraph:
        """Every named entity with its labels, aliases and types and no edges, fetched from the
        store in pages on first use: what the linker and `search` index."""
        if self._names is None:
            with self._lock:
                if self._names is None:
                    self._names = names_graph(self.store)
        return self._names

    def search(self, query: str, limit: int = 10) -> list[EntityMatch]:
        """`KnowledgeGraph.search` over the names graph, with this graph's ids and ranked by
        whole-store degrees, as the same triples compiled rank them."""
        check_name("search", query)
        limit = check_count("limit", limit, 0)
        names = self.names_graph

        def degrees_of(found: list[int]) -> np.ndarray:
            return self.degrees_of([self.entity_id(names.iri(e)) for e in found])

        matches = names.label_index.search(query, limit=limit, degrees_of=degrees_of)
        return [m._replace(entity=self.entity_id(m.iri)) for m in matches]

    # ----- a reference on disk (kg/store_reference.py) -----
    def save(self, directory: str | Path) -> Path:
        """Write the reference (not the triples) atomically: ``store.json`` and ``names/``."""
        names = self.names_graph
        with self._lock:
            reference = StoreReference(
                self.source, self.config, self._relations, list(self._iris), self.fingerprint
            )
        return reference.save(directory, names)

    @classmethod
    def open(cls, directory: str | Path, source: str | None = None) -> StoreGraph:
        """Reopen a saved reference; ``source`` points it at another URL or folder holding the
        same triples (a replica, a moved store)."""
        reference, names = StoreReference.open(directory)
        store = TripleStore(source or reference.source, reference.config)
        return cls(store, reference.relations, reference.entities, names)


def open_saved_graph(directory: str | Path, store_source: str | None = None) -> Graph:
    """What `Graph.save` wrote: a compiled KG folder, or a store reference (pointed at
    ``store_source`` when given: a replica, a moved store)."""
    if is_store_reference(directory):
        return StoreGraph.open(directory, store_source)
    return load_graph(directory)
