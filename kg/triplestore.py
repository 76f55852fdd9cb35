"""A read-only KG over a triple store, for graphs too big to load: fetch what a query needs.

`TripleStoreGraph` talks to a SPARQL 1.1 endpoint (HTTP, SELECT queries, JSON results) or to an
embedded on-disk `pyoxigraph.Store`. `neighborhood` pulls k-hop subgraphs with one batched query
per hop and per kind of fact (``VALUES ?v { ... }`` over the whole frontier: its edges in both
directions, then its candidates' degrees) and returns a small compiled `KnowledgeGraph` with the
same nodes and triples `KnowledgeGraph.subgraph` keeps on the whole graph loaded in memory: the
relevance rule of kg/subgraph.py, with degrees counted over the whole store. What a subgraph
fetched (edges, outgoing edges of its last hop, degrees, names and types) stays in LRU caches, so
a neighbourhood asked again, or one that overlaps it, sends no query for what is cached.

    store = TripleStoreGraph("http://localhost:7878/query")   # or TripleStoreGraph(store_dir)
    sub = store.neighborhood([store.resolve("Influenza")], hops=2, max_nodes=64)
    paths = store.paths(store.resolve("Influenza"), store.resolve("COVID-19"), k=3)

Edges are triples whose object is an IRI and whose predicate is not a type predicate (as in the
compiled graph); blank nodes are not followed, their labels differ from one query to the next.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np

from kg import vocab
from kg.compile import GraphBuilder
from kg.config import KGConfig
from kg.errors import AmbiguousEntityError, EntityNotFoundError, KGStoreError
from kg.graph import KnowledgeGraph, local_name
from kg.graph_path import GraphPath
from kg.paths import check_path_query, rank_paths
from kg.search import normalize
from kg.subgraph import Subgraph

Row = dict[str, dict[str, str]]  # one SPARQL JSON result row: var -> {type, value, ...}
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


class TripleStoreGraph:
    """Queries a triple store for neighbourhoods, labels and paths; never loads it whole.

    Args:
        source: a SPARQL endpoint URL (``http://...``) or the folder of an on-disk Oxigraph store.
        config: which predicates carry labels, aliases, descriptions and types (as for `kg.load`).
        cache_size: entities whose edges, names and types stay cached (each its own LRU
            cache, least recently used dropped); ten times as many degrees (one int each: a
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
        self.config = config or KGConfig()
        self.source = str(source)
        self.cache_size, self.batch = cache_size, batch
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.attempts = 0  # HTTP requests sent, retries included
        self._edges: OrderedDict[str, list[Edge]] = OrderedDict()
        self._degrees: OrderedDict[str, int] = OrderedDict()
        # last hop: out-edges to the kept nodes, with the node set they were fetched for
        self._among: OrderedDict[str, tuple[frozenset[str], list[Edge]]] = OrderedDict()
        self._facts: OrderedDict[str, list[Fact]] = OrderedDict()  # names, descriptions, types
        self._store: Any = None
        if not self.source.startswith(("http://", "https://")):
            import pyoxigraph

            if not Path(self.source).is_dir():
                raise KGStoreError(
                    f"{self.source!r} is neither an http(s) SPARQL endpoint nor a store folder; "
                    "create one with `kgfuse kg load FILES --backend oxigraph --store DIR`"
                )
            try:
                self._store = pyoxigraph.Store.read_only(self.source)
            except OSError as e:
                raise KGStoreError(f"cannot open the Oxigraph store {self.source}: {e}") from e
        c = self.config
        skip = self._skip = () if c.type_edges else c.type_predicates  # type facts: not edges
        self._not_type = f"FILTER({_in('?p', skip, negate=True)})" if skip else ""
        self._edge_p = f" && {_in('?p', skip, negate=True)}" if skip else ""
        self._name_predicates = tuple(dict.fromkeys(c.label_predicates + c.alias_predicates))

    def __repr__(self) -> str:
        return f"TripleStoreGraph({self.source!r}, cached={len(self._edges)})"

    # ----- queries -----
    def select(self, query: str) -> list[Row]:
        """Rows of a SELECT query, all or nothing: a failed query raises `KGStoreError`."""
        if self._store is not None:
            return _local_select(self._store, query)
        return self._http_select(query)

    def _http_select(self, query: str) -> list[Row]:
        data = urllib.parse.urlencode({"query": query}).encode()
        headers = {
            "Accept": "application/sparql-results+json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            self.attempts += 1
            request = urllib.request.Request(self.source, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = response.read()
                return json.loads(body)["results"]["bindings"]
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    detail = e.read().decode(errors="replace")[:300]
                    raise KGStoreError(
                        f"SPARQL endpoint {self.source} refused the query (HTTP {e.code}): {detail}"
                    ) from e
                why = f"HTTP {e.code}"
            except TimeoutError as e:
                why = f"no answer within timeout_s={self.timeout_s}s ({e})"
            except urllib.error.URLError as e:
                if isinstance(e.reason, TimeoutError):
                    why = f"no answer within timeout_s={self.timeout_s}s ({e.reason})"
                else:
                    why = str(e.reason)
            except (OSError, ValueError, KeyError) as e:
                why = f"unreadable answer ({e})"
            if attempt < self.retries:
                time.sleep(wait)
                wait *= 2
        raise KGStoreError(
            f"SPARQL endpoint {self.source} failed after {self.retries + 1} tries: {why}; "
            "check that the server runs and the URL is right, or raise timeout_s"
        )

    def _batched(self, template: str, iris: Sequence[str]) -> list[Row]:
        """``template`` (with ``{values}``) run over ``iris`` in chunks of ``batch``."""
        rows: list[Row] = []
        for lo in range(0, len(iris), self.batch):
            values = " ".join(f"<{i}>" for i in iris[lo : lo + self.batch])
            rows.extend(self.select(template.format(values=values)))
        return rows

    # ----- edges and degrees, cached -----
    def edges(self, iris: Sequence[str]) -> dict[str, list[Edge]]:
        """Every edge of each entity, both directions, sorted by (predicate, node)."""
        # read what is cached before caching more: a big request may evict its own entries
        result = {i: _get(self._edges, i) for i in dict.fromkeys(iris) if i in self._edges}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            query = (
                "SELECT ?v ?p ?o ?out WHERE { VALUES ?v { {values} } "
                # the predicate filter inside each branch: 3x faster on Oxigraph than outside
                f"{{ ?v ?p ?o FILTER(isIRI(?o){self._edge_p}) BIND(true AS ?out) }} UNION "
                f"{{ ?o ?p ?v FILTER(isIRI(?o){self._edge_p}) BIND(false AS ?out) }} }}"
            )
            got: dict[str, list[Edge]] = {i: [] for i in missing}
            for r in self._batched(_braces(query), missing):
                out = r["out"]["value"] == "true"
                got[r["v"]["value"]].append(Edge(r["p"]["value"], r["o"]["value"], out))
            for iri, found in got.items():  # cached only once every batch has succeeded
                result[iri] = sorted(set(found))
                _put(self._edges, iri, result[iri], self.cache_size)
        return {i: result[i] for i in iris}

    def degrees(self, iris: Sequence[str]) -> dict[str, int]:
        """Degree of each entity in the whole store (a self-loop counts twice, as in CSR)."""
        result = {i: _get(self._degrees, i) for i in dict.fromkeys(iris) if i in self._degrees}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            query = (
                "SELECT ?v (COUNT(*) AS ?n) WHERE { VALUES ?v { {values} } "
                "{ ?v ?p ?o FILTER(!isLiteral(?o)) } UNION { ?s ?p ?v } "
                + self._not_type
                + " } GROUP BY ?v"
            )
            got = dict.fromkeys(missing, 0)
            for r in self._batched(_braces(query), missing):
                got[r["v"]["value"]] = int(r["n"]["value"])
            for iri, n in got.items():
                result[iri] = n
                _put(self._degrees, iri, n, DEGREES_PER_ENTRY * self.cache_size)
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
            if known[iri] == 0 and not self._exists(iri):
                raise EntityNotFoundError(f"no entity {iri!r} in the store {self.source}")

    def _exists(self, iri: str) -> bool:
        """Whether any triple names ``iri`` (an entity with no edges: literals or types only)."""
        query = f"SELECT ?p WHERE {{ {{ <{iri}> ?p ?o }} UNION {{ ?s ?p <{iri}> }} }} LIMIT 1"
        return bool(self.select(query))

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
                within, found = _get(self._among, i)
                if inside <= within:
                    result[i] = [e for e in found if e.node in inside]
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            # the nodes as a sub-select: Oxigraph hash-joins it (6x faster than ?o IN (...))
            query = (
                "SELECT ?v ?p ?o WHERE { "
                f"{{ SELECT ?o WHERE {{ VALUES ?o {{ {' '.join(f'<{n}>' for n in inside)} }} }} }} "
                "VALUES ?v { {values} } ?v ?p ?o "
                + (f"FILTER({_in('?p', self._skip, negate=True)}) " if self._skip else "")
                + "}"
            )
            got: dict[str, list[Edge]] = {i: [] for i in missing}
            for r in self._batched(_braces(query), missing):
                got[r["v"]["value"]].append(Edge(r["p"]["value"], r["o"]["value"], True))
            for iri, edges in got.items():  # cached only once every batch has succeeded
                result[iri] = sorted(set(edges))
                within, known = inside, result[iri]
                old = self._among.get(iri)
                if old is not None and len(old[0]) + len(inside) <= AMONG_MAX_NODES:
                    # what is known of both node sets: a node in several neighbourhoods
                    within, known = old[0] | inside, sorted(set(old[1]) | set(known))
                _put(self._among, iri, (within, known), self.cache_size)
        return {i: result[i] for i in iris}

    def facts(self, iris: Sequence[str]) -> dict[str, list[Fact]]:
        """Each entity's names, descriptions and (unless types are edges) types, one query
        for all of ``iris`` (per ``batch``), cached."""
        result = {i: _get(self._facts, i) for i in dict.fromkeys(iris) if i in self._facts}
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        query = self._facts_query()
        if missing:
            got: dict[str, list[Fact]] = {i: [] for i in missing}
            for r in self._batched(_braces(query), missing if query else []):
                o = r["o"]
                if o["type"] in ("uri", "bnode"):
                    fact = Fact(r["p"]["value"], o["value"], None, "")
                else:
                    fact = Fact(
                        r["p"]["value"],
                        o["value"],
                        o.get("xml:lang"),
                        o.get("datatype", vocab.XSD_STRING),
                    )
                got[r["v"]["value"]].append(fact)
            for iri, found in got.items():
                result[iri] = found
                _put(self._facts, iri, found, self.cache_size)
        return {i: result[i] for i in iris}

    def _facts_query(self) -> str:
        """One branch per predicate, the predicate written out: Oxigraph then reads each
        entity's few facts from its index instead of scanning all its triples."""
        c = self.config
        names = dict.fromkeys(c.label_predicates + c.alias_predicates + c.description_predicates)
        branches = [f"{{ ?v <{p}> ?o FILTER(isLiteral(?o)) BIND(<{p}> AS ?p) }}" for p in names]
        if c.type_predicates and not c.type_edges:
            branches += [
                f"{{ ?v <{p}> ?o FILTER(isIRI(?o)) BIND(<{p}> AS ?p) }}" for p in c.type_predicates
            ]
        if not branches:
            return ""  # the config names no such predicate: nothing to ask
        return "SELECT ?v ?p ?o WHERE { VALUES ?v { {values} } " + " UNION ".join(branches) + " }"

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
    def _paged(self, query: str, page_size: int) -> Iterator[Row]:
        """Rows of an ``ORDER BY`` query fetched ``page_size`` at a time (LIMIT/OFFSET)."""
        for offset in itertools.count(0, page_size):
            page = self.select(f"{query}LIMIT {page_size} OFFSET {offset}")
            yield from page
            if len(page) < page_size:
                return

    def labels(self, page_size: int = 10_000) -> Iterator[tuple[str, str, list[str]]]:
        """``(iri, display label, aliases)`` of every named entity, in IRI order, fetched in
        pages (``ORDER BY ?s LIMIT/OFFSET``): a linker indexes names without the graph."""
        values_p = " ".join(f"<{p}>" for p in self._name_predicates)
        query = (
            "SELECT ?s ?p ?o WHERE { VALUES ?p { " + values_p + " } ?s ?p ?o "
            "FILTER(isIRI(?s) && isLiteral(?o)) } ORDER BY ?s ?p ?o "
        )
        for iri, rows in itertools.groupby(
            self._paged(query, page_size), key=lambda r: r["s"]["value"]
        ):
            label, aliases = self._names(list(rows))
            if label:
                yield iri, label, aliases

    def types(self, page_size: int = 10_000) -> Iterator[tuple[str, str]]:
        """``(entity, type)`` IRI pairs of every type fact, in order, fetched in pages."""
        if not self.config.type_predicates:
            return
        query = (
            "SELECT DISTINCT ?s ?o WHERE { ?s ?p ?o FILTER(isIRI(?s) && isIRI(?o) && "
            f"{_in('?p', self.config.type_predicates)}) }} ORDER BY ?s ?o "
        )
        for r in self._paged(query, page_size):
            yield r["s"]["value"], r["o"]["value"]

    def relations(self) -> list[str]:
        """Predicates of entity-to-entity triples, sorted by IRI: the relation ids a compiled
        KG of the same triples gives them."""
        rows = self.select(
            f"SELECT DISTINCT ?p WHERE {{ ?s ?p ?o FILTER(isIRI(?o){self._edge_p}) }}"
        )
        return sorted(r["p"]["value"] for r in rows)

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
        query = (
            "SELECT DISTINCT ?v ?t WHERE { VALUES ?v { {values} } "
            f"{{ ?v ?p ?t }} UNION {{ ?t ?p ?v }} FILTER({_in('?t', targets)}{self._edge_p}) }}"
        )
        for r in self._batched(_braces(query), list(found)):
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

    def label(self, iri: str) -> str:
        """Display label; the IRI's local name when the store gives none."""
        values_p = " ".join(f"<{p}>" for p in self._name_predicates)
        rows = self.select(
            f"SELECT ?p ?o WHERE {{ VALUES ?p {{ {values_p} }} <{iri}> ?p ?o "
            "FILTER(isLiteral(?o)) }"
        )
        return self._names(rows)[0] or local_name(iri)

    def resolve(self, ref: str) -> str:
        """An entity IRI from an IRI or a label (case-insensitive); raises if none or several."""
        iri_like = ":" in ref and not any(ch in ref for ch in ' <>"{}|^`\\')
        if iri_like and (self.degrees([ref])[ref] or self._exists(ref)):
            return ref
        values_p = " ".join(f"<{p}>" for p in self._name_predicates)
        wanted = normalize(ref)
        rows = self.select(
            f"SELECT DISTINCT ?s ?o WHERE {{ VALUES ?p {{ {values_p} }} ?s ?p ?o "
            f"FILTER(isIRI(?s) && isLiteral(?o) && LCASE(STR(?o)) = {json.dumps(ref.lower())}) }}"
        )
        hits = sorted({r["s"]["value"] for r in rows if normalize(r["o"]["value"]) == wanted})
        if not hits:
            raise EntityNotFoundError(f"no entity has the IRI or label {ref!r} in {self.source}")
        if len(hits) > 1:
            raise AmbiguousEntityError(
                f"{ref!r} names {len(hits)} entities: {', '.join(hits[:5])}; pass an IRI instead"
            )
        return hits[0]


def _braces(template: str) -> str:
    """Escape SPARQL braces for `str.format`, keeping the ``{values}`` slot."""
    return template.replace("{", "{{").replace("}", "}}").replace("{{values}}", "{values}")


def _in(var: str, iris: Sequence[str], negate: bool = False) -> str:
    """``?p IN (<a>, <b>)`` (or ``NOT IN``): a condition for FILTER."""
    return f"{var} {'NOT IN' if negate else 'IN'} ({', '.join(f'<{i}>' for i in iris)})"


def _put(cache: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _get(cache: OrderedDict[str, Any], key: str) -> Any:
    cache.move_to_end(key)
    return cache[key]


def _local_select(store: Any, query: str) -> list[Row]:
    """A pyoxigraph SELECT as SPARQL JSON rows, so both backends share the code above."""
    import pyoxigraph

    try:
        solutions = store.query(query)
        names = [v.value for v in solutions.variables]
        rows: list[Row] = []
        for solution in solutions:
            row: Row = {}
            for name in names:
                term = solution[name]
                if term is None:
                    continue
                if isinstance(term, pyoxigraph.NamedNode):
                    row[name] = {"type": "uri", "value": term.value}
                elif isinstance(term, pyoxigraph.BlankNode):
                    row[name] = {"type": "bnode", "value": term.value}
                else:
                    row[name] = {"type": "literal", "value": term.value}
                    if term.language:
                        row[name]["xml:lang"] = term.language
                    row[name]["datatype"] = term.datatype.value
            rows.append(row)
    except (OSError, SyntaxError, ValueError) as e:
        raise KGStoreError(f"query on the store failed: {e}") from e
    return rows
