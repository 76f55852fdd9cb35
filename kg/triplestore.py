"""`TripleStore`: a triple store read by IRI, with caches; never loaded whole.

It reads a SPARQL 1.1 endpoint or an embedded on-disk Oxigraph store through `SparqlClient`
(kg/sparql_client.py): each entity's edges (both directions), its degree in the whole store, the
edges from some entities to a node set, its names, descriptions, types and other literals, and
the names of every entity in pages (for a linker). Each read of many entities is one query per
``batch`` of them (``VALUES ?v { ... }``), and what it fetched stays in LRU caches (cachetools),
so asking again sends no query. It knows IRIs, not ids: `kg.store_graph.StoreGraph` numbers
them, implements the `Graph` protocol over this class, and runs the shared algorithms
(subgraphs, paths, counts) there; kg/store_names.py builds small compiled KGs of its names.

    store = TripleStore("http://localhost:7878/query")   # or TripleStore(store_dir)
    store.edges([EX + "flu"])        # {iri: [Edge(predicate, node, outgoing), ...]}
    store.resolve("Influenza")       # an IRI, from an IRI or a label

Edges are triples whose object is an IRI and whose predicate is not a type predicate (as in the
compiled graph); blank nodes are not followed, their labels differ from one query to the next.
The query texts are in kg/sparql.py, where every IRI and literal is a pyoxigraph term (an
invalid IRI raises `InvalidIRIError` before anything is sent).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

from cachetools import LRUCache
from pyoxigraph import Literal

from kg import sparql, vocab
from kg.config import KGConfig
from kg.errors import AmbiguousEntityError, EntityNotFoundError
from kg.search import normalize
from kg.sparql import Queries, Row, Select
from kg.sparql_client import SparqlClient
from kg.values import local_name

DEGREES_PER_ENTRY = 10  # degrees cached per cache_size entry
AMONG_MAX_NODES = 4096  # node set kept with a last-hop node's cached edges, at most
V = TypeVar("V")


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


def _row_order(edge: Edge) -> tuple[bool, str, str]:
    return not edge.outgoing, edge.predicate, edge.node


def _cached(
    cache: LRUCache[str, V], iris: Sequence[str], fetch: Callable[[list[str]], dict[str, V]]
) -> dict[str, V]:
    """``iri -> value`` for each of ``iris``: from ``cache``, else from one ``fetch`` of all
    the missing ones. The cached values are read before new ones go in (a request larger than
    the cache would evict its own entries), and go in only once the whole fetch succeeded."""
    result: dict[str, V] = {}
    missing: list[str] = []
    for i in dict.fromkeys(iris):
        try:
            result[i] = cache[i]  # one lookup (an LRU's also moves the entry): no `in` first
        except KeyError:
            missing.append(i)
    if missing:
        for iri, value in fetch(missing).items():
            result[iri] = cache[iri] = value
    return {i: result[i] for i in iris}


class TripleStore:
    """Reads a triple store by IRI, caching what it fetched (see the module docstring).

    Args:
        source: a SPARQL endpoint URL (``http://...``) or the folder of an on-disk Oxigraph store.
        config: which predicates carry labels, aliases, descriptions and types (as for `kg.load`).
        cache_size: entities whose edges, names and types stay cached (each its own LRU
            cache, least recently used dropped; at least 1); ten times as many degrees (one
            int each: a 2-hop neighbourhood on a large graph ranks thousands of candidates).
        batch: most IRIs in one ``VALUES`` block; more are split into several queries. The
            default sends a subgraph hop's whole frontier in one query.
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
        # out-edges to a node set (a subgraph's last hop), with the node set they were fetched for
        self._among: LRUCache[str, tuple[frozenset[str], list[Edge]]] = LRUCache(cache_size)
        self._facts: LRUCache[str, list[Fact]] = LRUCache(cache_size)  # names, texts, types

    def __repr__(self) -> str:
        return f"TripleStore({self.source!r}, cached={self.cached_entities})"

    @property
    def source(self) -> str:
        return self.client.source

    @property
    def attempts(self) -> int:
        """HTTP requests sent, retries included (the client's count)."""
        return self.client.attempts

    @property
    def cached_entities(self) -> int:
        """Entities whose edges are cached."""
        return len(self._edges)

    def clear_cache(self) -> None:
        for cache in (self._edges, self._degrees, self._among, self._facts):
            cache.clear()

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

    # ----- structure, cached -----
    def edges(self, iris: Sequence[str]) -> dict[str, list[Edge]]:
        """Every edge of each entity: the outgoing ones, then the incoming ones, each sorted by
        (predicate, node), which is a compiled CSR row's order."""
        return _cached(self._edges, iris, self._fetch_edges)

    def _fetch_edges(self, iris: list[str]) -> dict[str, list[Edge]]:
        got: dict[str, set[Edge]] = {i: set() for i in iris}
        for r in self._batched(self.queries.edges, iris):
            outgoing = r["out"]["value"] == "true"
            got[r["v"]["value"]].add(Edge(r["p"]["value"], r["o"]["value"], outgoing))
        return {i: sorted(found, key=_row_order) for i, found in got.items()}

    def degrees(self, iris: Sequence[str]) -> dict[str, int]:
        """Degree of each entity in the whole store (a self-loop counts twice, as in CSR)."""
        return _cached(self._degrees, iris, self._fetch_degrees)

    def _fetch_degrees(self, iris: list[str]) -> dict[str, int]:
        got = dict.fromkeys(iris, 0)
        for r in self._batched(self.queries.degrees, iris):
            got[r["v"]["value"]] = int(r["n"]["value"])
        return got

    def edges_among(self, iris: Sequence[str], nodes: Sequence[str]) -> dict[str, list[Edge]]:
        """Outgoing edges from ``iris`` to ``nodes``, sorted by (predicate, node): what the
        triples of a subgraph need, without all the edges of a hub among them. An entity whose
        whole row is cached needs no request; the others are asked in one (per batch), and the
        answers are cached with the node set they were fetched for, so a later call whose
        nodes fall within that set sends no query."""
        inside = frozenset(nodes)
        terms = sparql.iris(inside)  # checked even when the cache answers: an error is an error
        result: dict[str, list[Edge]] = {}
        derived: dict[str, list[Edge]] = {}
        for i in dict.fromkeys(iris):
            if i in self._among and inside <= self._among[i][0]:
                result[i] = [e for e in self._among[i][1] if e.node in inside]
            elif i in self._edges:
                row = self._edges[i]
                result[i] = derived[i] = [e for e in row if e.outgoing and e.node in inside]
        missing = [i for i in dict.fromkeys(iris) if i not in result]
        if missing:
            got: dict[str, set[Edge]] = {i: set() for i in missing}
            for r in self._batched(self.queries.edges_among.given(o=terms), missing):
                got[r["v"]["value"]].add(Edge(r["p"]["value"], r["o"]["value"], True))
            for entity, fetched in got.items():  # cached only once every batch has succeeded
                result[entity] = derived[entity] = sorted(fetched)
        for entity, edges in derived.items():
            self._remember_among(entity, inside, edges)
        return {i: result[i] for i in iris}

    def _remember_among(self, entity: str, inside: frozenset[str], edges: list[Edge]) -> None:
        within, known = inside, edges
        old = self._among.get(entity)
        if old is not None and len(old[0]) + len(inside) <= AMONG_MAX_NODES:
            # what is known of both node sets: a node in several subgraphs
            within, known = old[0] | inside, sorted(set(old[1]) | set(edges))
        self._among[entity] = (within, known)

    def label_links(self, iris: Sequence[str], targets: Sequence[str]) -> dict[str, set[str]]:
        """Which of ``targets`` each entity shares an edge with, in either direction."""
        found: dict[str, set[str]] = {i: set() for i in iris}
        if not found or not targets:
            return found
        query = self.queries.links(sparql.iris(dict.fromkeys(targets)))
        for r in self._batched(query, list(found)):
            found[r["v"]["value"]].add(r["t"]["value"])
        return found

    def relations(self) -> list[str]:
        """Predicates of entity-to-entity triples, sorted by IRI: the relation ids a compiled
        KG of the same triples gives them."""
        return sorted(r["p"]["value"] for r in self.select(self.queries.relations))

    # ----- which entities exist -----
    def exists(self, entity: str) -> bool:
        """Whether any triple names ``entity``: an edge (its degree, cached) or, for one with
        none, a literal or a type."""
        if self.degrees([entity])[entity]:
            return True
        exists = self.queries.exists
        return bool(self.select(Select(exists.text, bind={"v": sparql.iri(entity)})))

    def check_entities(self, iris: Sequence[str]) -> None:
        """Raise `EntityNotFoundError` for the first of ``iris`` no triple names (one request
        for all their degrees, then one for each that has no edge)."""
        self.degrees(iris)
        for iri in dict.fromkeys(iris):
            if not self.exists(iri):
                raise EntityNotFoundError(f"no entity {iri!r} in the store {self.source}")

    # ----- literals and types, cached -----
    def facts(self, iris: Sequence[str]) -> dict[str, list[Fact]]:
        """Each entity's names, descriptions and (unless types are edges) types."""
        return _cached(self._facts, iris, self._fetch_facts)

    def _fetch_facts(self, iris: list[str]) -> dict[str, list[Fact]]:
        got: dict[str, list[Fact]] = {i: [] for i in iris}
        query = self.queries.facts
        for r in self._batched(query, iris) if query else []:
            o = r["o"]
            if o["type"] in ("uri", "bnode"):
                fact = Fact(r["p"]["value"], o["value"], None, "")
            else:
                datatype = o.get("datatype", vocab.XSD_STRING)
                fact = Fact(r["p"]["value"], o["value"], o.get("xml:lang"), datatype)
            got[r["v"]["value"]].append(fact)
        return got

    def attributes(self, entity: str) -> list[tuple[str, str, str]]:
        """As `KnowledgeGraph.attributes_of`: ``(predicate, value, datatype or "@lang")`` of
        the entity's literals that are not names or descriptions, sorted (not cached)."""
        c = self.config
        names = set(c.label_predicates + c.alias_predicates + c.description_predicates)
        found = set()
        for r in self.select(self.queries.literals.given(v=[sparql.iri(entity)])):
            p, o = r["p"]["value"], r["o"]
            if p not in names:
                lang = o.get("xml:lang")
                found.add(
                    (p, o["value"], f"@{lang}" if lang else o.get("datatype", vocab.XSD_STRING))
                )
        return sorted(found)

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
        if sparql.is_iri(ref) and self.exists(ref):
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
