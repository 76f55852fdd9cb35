"""A read-only KG over a triple store, for graphs too big to load: fetch what a query needs.

`TripleStore` talks to a SPARQL 1.1 endpoint (HTTP, SELECT queries, JSON results) or to an
embedded on-disk `pyoxigraph.Store`. `neighborhood` pulls k-hop subgraphs with one batched query
per hop and per kind of fact (``VALUES ?v { ... }`` over the whole frontier: its edges in both
directions, then its candidates' degrees) and returns a small compiled `KnowledgeGraph` with the
same nodes and triples `KnowledgeGraph.subgraph` keeps on the whole graph loaded in memory: the
relevance rule of kg/subgraph.py, with degrees counted over the whole store. What a subgraph
fetched (edges, outgoing edges of its last hop, degrees, names and types) stays in LRU caches, so
a neighbourhood asked again, or one that overlaps it, sends no query for what is cached.

    store = TripleStore("http://localhost:7878/query")   # or TripleStore(store_dir)
    sub = store.neighborhood([store.resolve("Influenza")], hops=2, max_nodes=64)
    paths = store.paths(store.resolve("Influenza"), store.resolve("COVID-19"), k=3)

Edges are triples whose object is an IRI and whose predicate is not a type predicate (as in the
compiled graph); blank nodes are not followed, their labels differ from one query to the next.
The query texts are in kg/sparql.py, where every IRI and literal is a pyoxigraph term (an
invalid IRI raises `InvalidIRIError` before anything is sent); kg/sparql_client.py runs them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
from cachetools import LRUCache
from pyoxigraph import Literal

from kg import sparql, vocab
from kg.compile import GraphBuilder
from kg.config import KGConfig
from kg.errors import AmbiguousEntityError, EntityNotFoundError
from kg.graph import KnowledgeGraph, local_name
from kg.graph_path import GraphPath
from kg.paths import check_path_query, rank_paths
from kg.search import normalize
from kg.sparql import Queries, Row, Select
from kg.sparql_client import SparqlClient
from kg.subgraph import Subgraph

DEGREES_PER_ENTRY = 10  # degrees cached per cache_size entry
AMONG_MAX_NODES = 4096  # node set kept with a last-hop node's cached edges, at most


class Edge(NamedTuple):
    """An edge seen from one entity: ``outgoing`` means ``(entity, predicate, node)``."""

    predicate: str
    node: str
    outgoing: bool


class Fact(NamedTuple):
    """A name, description or type of an entity: ``(predicate, value, lang, datatype)``; a
    type has its class IRI as ``value`` and an empty ``datatype``."""

    predicate: str
    value: str
    lang: str | None
    datatype: str


class TripleStore:
    """Queries a triple store for neighbourhoods, labels and paths; never loads it whole.

    Args:
        source: a SPARQL endpoint URL (``http://...``) or the folder of an on-disk Oxigraph store.
        config: which predicates carry labels, aliases, descriptions and types (as for `kg.load`).
        cache_size: entities whose edges, names and types stay cached (each its own LRU
            cache, least recently used dropped; at least 1); ten times as many degrees (one int each: a
            2-hop neighbourhood on a large graph ranks thousands of candidates by degree).
        batch: most IRIs in one ``VALUES`` block; a larger frontier is split into several
            queries. The default sends each hop's frontier in one query.
        timeout_s: seconds one HTTP query may take before it fails (the embedded store has none).
        retries: further tries after a transient failure (refused, 5xx, timeout).
        backoff_s: wait before the first retry; doubled after each.
    """

    def __init__(
        self,
        source: str | Path,
        config: KGConfig | None = None,
        cache_size: int = 100_000,
        batch: int = 5_000,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ):
        if cache_size < 1 or batch < 1:
            raise ValueError(f"need cache_size >= 1 and batch >= 1 (got {cache_size}, {batch})")
        self.config = config or KGConfig()
        self.client = SparqlClient(source, timeout_s, retries, backoff_s)
        self.cache_size, self.batch = cache_size, batch
        self.queries = Queries(self.config)
        self._edges: LRUCache[str, list[Edge]] = LRUCache(cache_size)
        self._degrees: LRUCache[str, int] = LRUCache(DEGREES_PER_ENTRY * cache_size)
        # last hop: out-edges to the kept nodes, with the node set they were fetched for
        self._among: LRUCache[str, tuple[frozenset[str], list[Edge]]] = LRUCache(cache_size)
        self._facts: LRUCache[str, list[Fact]] = LRUCache(cache_size)  # names, texts, types

    def __repr__(self) -> str:
        return f"TripleStore({self.source!r}, cached={len(self._edges)})"

    # ----- the client -----
    @property
    def source(self) -> str:
        return self.client.source

    @property
    def attempts(self) -> int:
        """HTTP requests sent, retries included."""
        return self.client.attempts

    @property
    def retries(self) -> int:
        return self.client.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.client.retries = value

    @property
    def backoff_s(self) -> float:
        return self.client.backoff_s

    @backoff_s.setter
    def backoff_s(self, value: float) -> None:
        self.client.backoff_s = value

    def select(self, query: Select | str) -> list[Row]:
        """Rows of a SELECT query, all or nothing: a failed query raises `KGStoreError`."""
        return self.client.select(query)

    def _batched(self, query: Select, entities: Sequence[str], var: str = "v") -> list[Row]:
        """``query`` with its ``VALUES ?var`` slot filled by ``entities``, ``batch`` at a time."""
        terms = sparql.iris(entities)  # all checked before the first query is sent
        rows: list[Row] = []
        for lo in range(0, len(terms), self.batch):
            rows.extend(self.select(query.given(**{var: terms[lo : lo + self.batch]})))
        return rows

    # ----- edges and degrees, cached -----
    def edges(self, iris: Sequence[str]) -> dict[str, list[Edge]]:
        """Every edge of each entity, both directions, sorted by (predicate, node)."""
        # read what is cached before caching more: a big request may evict its own entries
        result = {i: self._edges[i] for i in dict.fromkeys(iris) if i in self._edges}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            got: dict[str, list[Edge]] = {i: [] for i in missing}
            for r in self._batched(self.queries.edges, missing):
                out = r["out"]["value"] == "true"
                got[r["v"]["value"]].append(Edge(r["p"]["value"], r["o"]["value"], out))
            for entity, found in got.items():  # cached only once every batch has succeeded
                result[entity] = self._edges[entity] = sorted(set(found))
        return {i: result[i] for i in iris}

    def degrees(self, iris: Sequence[str]) -> dict[str, int]:
        """Degree of each entity in the whole store (a self-loop counts twice, as in CSR)."""
        result = {i: self._degrees[i] for i in dict.fromkeys(iris) if i in self._degrees}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            got = dict.fromkeys(missing, 0)
            for r in self._batched(self.queries.degrees, missing):
                got[r["v"]["value"]] = int(r["n"]["value"])
            for entity, n in got.items():
                result[entity] = self._degrees[entity] = n
        return {i: result[i] for i in iris}

    def clear_cache(self) -> None:
        for cache in (self._edges, self._degrees, self._among, self._facts):
            cache.clear()

    # ----- subgraphs and paths -----
    def neighborhood(self, seeds: Iterable[str], hops: int = 2, max_nodes: int = 128) -> Subgraph:
        """The k-hop subgraph `KnowledgeGraph.subgraph` would keep, as a small compiled KG.

        Args:
            seeds: entity IRIs (`resolve` turns labels into IRIs).
            hops: how far from the seeds to look.
            max_nodes: nodes kept in all (every seed is kept even beyond it), chosen by the
                relevance rule of kg/subgraph.py.

        Returns:
            a `Subgraph` whose ``kg`` holds the kept nodes, their triples among themselves,
            labels, aliases, descriptions and types; ``nodes`` are ids in that small KG, in
            relevance order (seeds first).
        """
        if hops < 0 or max_nodes < 1:
            raise ValueError(
                f"need hops >= 0 and max_nodes >= 1 (got hops={hops}, max_nodes={max_nodes})"
            )
        chosen = list(dict.fromkeys(seeds))
        self._check_entities(chosen)
        hop_of = [0] * len(chosen)
        frontier, room = chosen, max(max_nodes - len(chosen), 0)
        for h in range(1, hops + 1):
            if room == 0 or not frontier:
                break
            votes: dict[str, int] = {}
            kept = set(chosen)
            for edges in self.edges(frontier).values():
                for node in {e.node for e in edges} - kept:
                    votes[node] = votes.get(node, 0) + 1
            if not votes:
                break
            degree = self.degrees(list(votes))
            frontier = sorted(votes, key=lambda n: (-votes[n], degree[n], n))[:room]
            chosen += frontier
            hop_of += [h] * len(frontier)
            room -= len(frontier)
        return self._compile(chosen, hop_of)

    def _check_entities(self, iris: list[str]) -> None:
        known = self.degrees(iris)
        for iri in iris:
            if known[iri] == 0 and not self.exists(iri):
                raise EntityNotFoundError(f"no entity {iri!r} in the store {self.source}")

    def exists(self, entity: str) -> bool:
        """Whether any triple names ``entity`` (one with no edges: literals or types only)."""
        exists = self.queries.exists
        return bool(self.select(Select(exists.text, bind={"v": sparql.iri(entity)})))

    def _compile(self, nodes: list[str], hop_of: list[int]) -> Subgraph:
        """Triples among ``nodes`` in the order `k_hop_subgraph` lists them, compiled."""
        inside = set(nodes)
        edges = {i: self._edges[i] for i in nodes if i in self._edges}
        edges |= self._edges_among([i for i in nodes if i not in edges], nodes)
        triples = [
            (s, e.predicate, e.node)
            for s in nodes
            for e in edges[s]
            if e.outgoing and e.node in inside
        ]
        builder = GraphBuilder(self.config)
        for s in nodes:
            builder.entity(s)
        if triples:
            builder.add_edges(*map(list, zip(*triples, strict=True)))
        self._add_facts(builder, nodes)
        graph = builder.build(sources=[self.source])
        ids = [graph.entity_id(n) for n in nodes]
        position = {iri: pos for pos, iri in enumerate(nodes)}
        relation = {p: graph.relation_id(p) for p in {p for _, p, _ in triples}}
        edge_index = np.asarray(
            [[position[s] for s, _, _ in triples], [position[o] for _, _, o in triples]],
            dtype=np.int64,
        ).reshape(2, -1)
        edge_type = np.asarray([relation[p] for _, p, _ in triples], dtype=np.int64)
        return Subgraph(
            graph,
            np.asarray(ids, dtype=np.int64),
            np.asarray(hop_of, dtype=np.int64),
            hop_of.count(0),
            edge_index,
            edge_type,
        )

    def _edges_among(self, iris: list[str], nodes: list[str]) -> dict[str, list[Edge]]:
        """Outgoing edges from ``iris`` to ``nodes``: what the last hop's nodes need, without
        all the edges of a hub among them. Cached with the node set they were fetched for, so
        a later call whose nodes fall within that set sends no query."""
        inside = frozenset(nodes)
        result: dict[str, list[Edge]] = {}
        for i in dict.fromkeys(iris):
            if i in self._among:
                within, found = self._among[i]
                if inside <= within:
                    result[i] = [e for e in found if e.node in inside]
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            query = self.queries.edges_among.given(o=sparql.iris(inside))
            got: dict[str, list[Edge]] = {i: [] for i in missing}
            for r in self._batched(query, missing):
                got[r["v"]["value"]].append(Edge(r["p"]["value"], r["o"]["value"], True))
            for entity, edges in got.items():  # cached only once every batch has succeeded
                result[entity] = sorted(set(edges))
                within, known = inside, result[entity]
                old = self._among.get(entity)
                if old is not None and len(old[0]) + len(inside) <= AMONG_MAX_NODES:
                    # what is known of both node sets: a node in several neighbourhoods
                    within, known = old[0] | inside, sorted(set(old[1]) | set(known))
                self._among[entity] = (within, known)
        return {i: result[i] for i in iris}

    def facts(self, iris: Sequence[str]) -> dict[str, list[Fact]]:
        """Each entity's names, descriptions and (unless types are edges) types, one query
        for all of ``iris`` (per ``batch``), cached."""
        result = {i: self._facts[i] for i in dict.fromkeys(iris) if i in self._facts}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            got: dict[str, list[Fact]] = {i: [] for i in missing}
            query = self.queries.facts
            for r in self._batched(query, missing) if query else []:
                o = r["o"]
                if o["type"] in ("uri", "bnode"):
                    fact = Fact(r["p"]["value"], o["value"], None, "")
                else:
                    datatype = o.get("datatype", vocab.XSD_STRING)
                    fact = Fact(r["p"]["value"], o["value"], o.get("xml:lang"), datatype)
                got[r["v"]["value"]].append(fact)
            for entity, found in got.items():
                result[entity] = self._facts[entity] = found
        return {i: result[i] for i in iris}

    def _add_facts(self, builder: GraphBuilder, nodes: list[str]) -> None:
        """Names, descriptions and types of ``nodes`` into ``builder``."""
        types: list[tuple[str, str, str]] = []
        for iri, found in self.facts(nodes).items():
            for f in found:
                if f.datatype:
                    builder.add_literal(iri, f.predicate, f.value, f.lang, f.datatype)
                else:
                    types.append((iri, f.predicate, f.value))
        if types:
            builder.add_edges(*map(list, zip(*types, strict=True)))

    def paths(
        self, source: str, target: str, k: int = 5, max_hops: int = 3, max_nodes: int = 2000
    ) -> tuple[KnowledgeGraph, list[GraphPath]]:
        """The paths `KnowledgeGraph.paths` finds, with ids of the small KG returned beside them
        (``path.text(kg)`` prints one)."""
        check_path_query(k, max_hops)
        sub = self.neighborhood([source, target], hops=math.ceil(max_hops / 2), max_nodes=max_nodes)
        graph = cast(KnowledgeGraph, sub.kg)  # `_compile` builds one
        if source == target:
            return graph, []

        def whole_store_degrees(nodes: list[int]) -> dict[int, int]:
            found = self.degrees([graph.iri(n) for n in nodes])
            return {n: found[graph.iri(n)] for n in nodes}

        a, b = graph.entity_id(source), graph.entity_id(target)
        return graph, rank_paths(sub, a, b, k, max_hops, whole_store_degrees)

    # ----- names -----
    def _paged(self, query: Select, page_size: int) -> Iterator[Row]:
        """Rows of an ``ORDER BY`` query fetched ``page_size`` at a time (LIMIT/OFFSET)."""
        for offset in itertools.count(0, page_size):
            page = self.select(query.page(page_size, offset))
            yield from page
            if len(page) < page_size:
                return

    def labels(self, page_size: int = 10_000) -> Iterator[tuple[str, str, list[str]]]:
        """``(iri, display label, aliases)`` of every named entity, in IRI order, fetched in
        pages (``ORDER BY ?s LIMIT/OFFSET``): a linker indexes names without the graph."""
        rows = self._paged(self.queries.all_names, page_size)
        for entity, group in itertools.groupby(rows, key=lambda r: r["s"]["value"]):
            label, aliases = self._names(list(group))
            if label:
                yield entity, label, aliases

    def types(self, page_size: int = 10_000) -> Iterator[tuple[str, str]]:
        """``(entity, type)`` IRI pairs of every type fact, in order, fetched in pages."""
        if not self.config.type_predicates:
            return
        for r in self._paged(self.queries.types, page_size):
            yield r["s"]["value"], r["o"]["value"]

    def relations(self) -> list[str]:
        """Predicates of entity-to-entity triples, sorted by IRI: the relation ids a compiled
        KG of the same triples gives them."""
        return sorted(r["p"]["value"] for r in self.select(self.queries.relations))

    def describe(self, iris: Sequence[str]) -> KnowledgeGraph:
        """A small compiled KG of ``iris`` alone: their labels, aliases, descriptions and types,
        no edges (the names and texts a model needs for entities it has not fetched yet)."""
        builder = GraphBuilder(self.config)
        nodes = list(dict.fromkeys(iris))
        for iri in nodes:
            builder.entity(iri)
        self._add_facts(builder, nodes)
        return builder.build(sources=[self.source])

    def label_links(self, iris: Sequence[str], targets: Sequence[str]) -> dict[str, set[str]]:
        """Which of ``targets`` each entity shares an edge with, in either direction."""
        found: dict[str, set[str]] = {i: set() for i in iris}
        if not found or not targets:
            return found
        query = self.queries.links(sparql.iris(dict.fromkeys(targets)))
        for r in self._batched(query, list(found)):
            found[r["v"]["value"]].add(r["t"]["value"])
        return found

    def _names(self, rows: list[Row]) -> tuple[str, list[str]]:
        """Display label and aliases, picked as `GraphBuilder` picks them."""
        c = self.config
        rank = {p: i for i, p in enumerate(c.label_predicates)}
        ranked, names = [], set()
        for r in rows:
            lang, value = r["o"].get("xml:lang"), r["o"]["value"]
            if not c.accepts_language(lang) or not value.strip():
                continue
            value = " ".join(value.split())
            names.add(value)
            p = r["p"]["value"]
            if p in rank:
                ranked.append((rank[p], c.language_rank(lang), value))
        label = min(ranked)[2] if ranked else ""
        return label, ([label] if label else []) + sorted(names - {label})

    def label(self, entity: str) -> str:
        """Display label; the IRI's local name when the store gives none."""
        names = self.queries.names
        rows = self.select(Select(names.text, names.values, {"v": sparql.iri(entity)}))
        return self._names(rows)[0] or local_name(entity)

    def resolve(self, ref: str) -> str:
        """An entity IRI from an IRI or a label (case-insensitive); raises if none or several."""
        if sparql.is_iri(ref) and (self.degrees([ref])[ref] or self.exists(ref)):
            return ref
        by_name = self.queries.by_name
        wanted = Literal(ref.lower())  # a term: quotes and backslashes stay in the literal
        rows = self.select(Select(by_name.text, by_name.values, {"name": wanted}))
        hits = sorted(
            {r["s"]["value"] for r in rows if normalize(r["o"]["value"]) == normalize(ref)}
        )
        if not hits:
            raise EntityNotFoundError(f"no entity has the IRI or label {ref!r} in {self.source}")
        if len(hits) > 1:
            raise AmbiguousEntityError(
                f"{ref!r} names {len(hits)} entities: {', '.join(hits[:5])}; pass an IRI instead"
            )
        return hits[0]
