"""The triple-store backend against a real Oxigraph server and an embedded on-disk store:
`TripleStore`'s reads by IRI (requests, caches, terms, failures) and `StoreGraph`'s subgraphs,
paths and counts over both, equal to the graph loaded in memory. tests/test_graph_parity.py
checks every other method of the `Graph` protocol over the embedded store."""

from __future__ import annotations

import http.server
import random
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode
from typer.testing import CliRunner

import kg
from fusion.counter import LabelCounter
from kg.cli import app
from kg.errors import EntityNotFoundError, InvalidIRIError, KGStoreError
from kg.sparql import Select
from kg.store_graph import StoreGraph
from kg.store_names import describe
from kg.triplestore import TripleStore
from tests.conftest import free_port, oxigraph_endpoint, oxigraph_store

pytestmark = pytest.mark.integration

EX = "http://example.org/tiny/"
GEN = "http://example.org/gen/"
ODD_LABEL = 'say """hi""" \\ VALUES ?v {} ?o'  # quotes, a backslash, text like a query slot
BAD_IRI = EX + "flu> ?p ?o } #"  # would close the IRI and the query, were it pasted in


def random_graph(path: Path, seed: int, *more: str) -> Path:
    """A random 60-node graph with ties, hubs, self-loops, types and labels, and ``more``
    N-Triples lines, written to ``path`` (tests/test_graph_parity.py uses it too)."""
    rng = random.Random(seed)
    lines = set(more)
    for _ in range(220):
        s, o = rng.randrange(60), int(rng.paretovariate(1.2)) % 60
        if rng.random() < 0.5:
            s, o = o, s
        lines.add(f"<{GEN}e{s:02d}> <{GEN}r{rng.randrange(3)}> <{GEN}e{o:02d}> .")
    for e in range(0, 60, 3):
        lines.add(f'<{GEN}e{e:02d}> <http://www.w3.org/2000/01/rdf-schema#label> "node {e}" .')
        lines.add(f"<{GEN}e{e:02d}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{GEN}T> .")
    path.write_text("\n".join(sorted(lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def triples(tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """tiny.ttl plus a random graph and an entity whose label reads like SPARQL."""
    odd = ODD_LABEL.replace("\\", "\\\\").replace('"', '\\"')
    label = f'<{GEN}odd> <http://www.w3.org/2000/01/rdf-schema#label> "{odd}" .'
    return [tiny_ttl, random_graph(tmp_path_factory.mktemp("gen") / "gen.nt", 7, label)]


@pytest.fixture(scope="module")
def memory(triples: list[Path]) -> kg.KnowledgeGraph:
    return kg.load(triples)


@pytest.fixture(scope="module")
def endpoint(triples: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Oxigraph server on a free loopback port, serving ``triples``."""
    with oxigraph_endpoint(triples, tmp_path_factory.mktemp("oxigraph-server")) as url:
        yield url


@pytest.fixture(scope="module")
def embedded(triples: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return oxigraph_store(triples, tmp_path_factory.mktemp("oxigraph-embedded"))


@pytest.fixture(scope="module", params=["endpoint", "embedded"])
def store(request: pytest.FixtureRequest) -> TripleStore:
    return TripleStore(request.getfixturevalue(request.param), batch=7)


CASES = [
    ([EX + "flu"], 2, 128),
    ([EX + "flu"], 2, 3),
    ([EX + "cough"], 1, 2),
    ([EX + "covid", EX + "hay_fever"], 2, 4),
    ([GEN + "e00"], 2, 10),
    ([GEN + "e03", GEN + "e17"], 3, 25),
    ([GEN + "e42"], 2, 200),
    ([GEN + "e09", GEN + "e09", GEN + "e30"], 1, 1),
]


@pytest.mark.parametrize(
    ("source", "target"),
    [(EX + "flu", EX + "covid"), (EX + "cold", EX + "sars_cov_2"), (GEN + "e03", GEN + "e17")],
)
def test_store_graph_paths_equal_in_memory_paths(
    store: TripleStore, memory: kg.KnowledgeGraph, source: str, target: str
) -> None:
    local = StoreGraph(store)
    got = local.paths(local.entity_id(source), local.entity_id(target), k=5, max_hops=3)
    want = memory.paths(memory.entity_id(source), memory.entity_id(target), k=5, max_hops=3)
    assert want, "the case should have paths"
    assert [p.text(local) for p in got] == [p.text(memory) for p in want]
    assert [[local.iri(e) for e in p.entities] for p in got] == [
        [memory.iri(e) for e in p.entities] for p in want
    ]
    assert [p.score for p in got] == pytest.approx([p.score for p in want])


@pytest.mark.parametrize(("seeds", "hops", "max_nodes"), CASES)
def test_store_graph_subgraph_has_the_compiled_ids_of_relations_and_triples(
    store: TripleStore, memory: kg.KnowledgeGraph, seeds, hops, max_nodes
) -> None:
    """The model's view of a store: triples with the relation ids of the compiled graph."""
    graph = StoreGraph(store)
    assert [graph.relation_iri(r) for r in range(graph.num_relations)] == [
        memory.relation_iri(r) for r in range(memory.num_relations)
    ]
    got = graph.subgraph([graph.entity_id(s) for s in seeds], hops=hops, max_nodes=max_nodes)
    want = memory.subgraph([memory.entity_id(s) for s in seeds], hops=hops, max_nodes=max_nodes)

    def named(g: object, sub: kg.Subgraph) -> list[tuple[str, int, str]]:
        return [(g.iri(t.subject), t.relation, g.iri(t.object)) for t in sub.triples()]  # type: ignore[attr-defined]

    assert named(graph, got) == named(memory, want)  # same triples, same order, same ids
    assert [graph.iri(n) for n in got.nodes] == [memory.iri(n) for n in want.nodes]
    assert got.hop.tolist() == want.hop.tolist()
    assert got.num_seeds == want.num_seeds
    assert [graph.text(n) for n in got.nodes] == [memory.text(n) for n in want.nodes]
    first = got.nodes[0]
    assert [(n.relation, graph.iri(n.node), n.outgoing) for n in graph.neighbors_of(first)] == [
        (n.relation, memory.iri(n.node), n.outgoing)
        for n in memory.neighbors_of(memory.entity_id(seeds[0]))
    ]


@pytest.mark.parametrize("by_relation", [False, True])
def test_store_counter_features_equal_the_compiled_counter(
    store: TripleStore, memory: kg.KnowledgeGraph, by_relation: bool
) -> None:
    graph = StoreGraph(store)
    label_iris = [EX + "sars_cov_2", EX + "influenza_virus", GEN + "e00", GEN + "e07"]
    compiled = LabelCounter(
        memory, [memory.entity_id(i) for i in label_iris], max_degree=12, by_relation=by_relation
    )
    counter = LabelCounter(
        graph, [graph.entity_id(i) for i in label_iris], max_degree=12, by_relation=by_relation
    )
    assert counter.dims == compiled.dims
    rng = random.Random(3)
    cases = [[EX + "flu", EX + "fever"], [EX + "cough"], []]
    cases += [[f"{GEN}e{rng.randrange(60):02d}" for _ in range(3)] for _ in range(6)]
    for linked in cases:
        masked = linked[:1]
        want = compiled.features(
            [memory.entity_id(i) for i in linked], [memory.entity_id(i) for i in masked]
        )
        got = counter.features(
            [graph.entity_id(i) for i in linked], [graph.entity_id(i) for i in masked]
        )
        assert got.tolist() == want.tolist(), linked
    assert any(compiled.features([memory.entity_id(i) for i in c]).any() for c in cases)
    # counted as if some triples were gone (explanations): the label facts and edges of the
    # first linked entities and of their neighbours
    changed = 0
    for linked in cases[:5]:
        ids = [memory.entity_id(i) for i in linked]
        near = {n.node for e in ids for n in memory.neighbors_of(e)}
        gone = [t for t in memory.triples() if t.subject in near or t.object in near][::3]
        want = compiled.without(gone).features(ids)
        got = counter.without(
            [
                kg.Triple(
                    graph.entity_id(memory.iri(t.subject)),
                    t.relation,
                    graph.entity_id(memory.iri(t.object)),
                )
                for t in gone
            ]
        ).features([graph.entity_id(i) for i in linked])
        assert got.tolist() == want.tolist(), linked
        changed += want.tolist() != compiled.features(ids).tolist()
    assert changed >= 2


def test_triplestore_cache_smaller_than_one_request_still_answers(
    embedded: Path, memory: kg.KnowledgeGraph
) -> None:
    """A request for more entities than the cache holds must not lose its own entries."""
    graph = StoreGraph(TripleStore(embedded, cache_size=2, batch=3))
    seeds = [GEN + "e03", GEN + "e17"]
    got = graph.subgraph([graph.entity_id(s) for s in seeds], hops=3, max_nodes=25)
    want = memory.subgraph([memory.entity_id(s) for s in seeds], hops=3, max_nodes=25)
    assert [graph.iri(n) for n in got.nodes] == [memory.iri(n) for n in want.nodes]
    assert got.triples() and [
        (graph.iri(t.subject), t.relation, graph.iri(t.object)) for t in got.triples()
    ] == [(memory.iri(t.subject), t.relation, memory.iri(t.object)) for t in want.triples()]


def test_triplestore_degrees_are_whole_store_degrees(
    store: TripleStore, memory: kg.KnowledgeGraph
) -> None:
    iris = [memory.iri(e) for e in range(memory.num_entities)]
    got = store.degrees(iris)
    assert [got[i] for i in iris] == memory.degrees().tolist()


def test_triplestore_labels_pages_and_names(store: TripleStore, memory: kg.KnowledgeGraph) -> None:
    want = [
        (memory.iri(e), memory.labels[e], memory.aliases_of(e))
        for e in range(memory.num_entities)
        if memory.aliases_of(e)
    ]
    assert list(store.labels(page_size=3)) == want
    assert list(store.labels(page_size=10_000)) == want
    assert store.resolve("influenza") == EX + "flu"
    assert store.resolve(EX + "cough") == EX + "cough"
    assert store.label(EX + "flu") == "Influenza"
    with pytest.raises(EntityNotFoundError):
        store.resolve("no such disease")
    assert store.exists(EX + "flu") and not store.exists(EX + "nowhere")
    with pytest.raises(EntityNotFoundError, match="nowhere"):
        store.check_entities([EX + "flu", EX + "nowhere"])


def test_triplestore_literal_with_quotes_and_backslash_round_trips(
    store: TripleStore, memory: kg.KnowledgeGraph
) -> None:
    """A label is sent as a term (bound on the embedded store, serialised by pyoxigraph over
    HTTP) and read back exactly."""
    assert memory.label(memory.entity_id(GEN + "odd")) == ODD_LABEL
    assert store.resolve(ODD_LABEL) == GEN + "odd"
    assert store.resolve(ODD_LABEL.upper()) == GEN + "odd"
    assert store.label(GEN + "odd") == ODD_LABEL
    assert (GEN + "odd", ODD_LABEL, [ODD_LABEL]) in list(store.labels())
    assert describe(store, [GEN + "odd"]).labels[0] == ODD_LABEL
    with pytest.raises(EntityNotFoundError):
        store.resolve('say """hi')


def test_triplestore_invalid_iri_is_refused_before_any_query(store: TripleStore) -> None:
    graph = StoreGraph(store)
    sent = store.attempts
    flu, odd = graph.entity_id(EX + "flu"), graph.entity_id(EX + "no such>thing")
    calls = [
        lambda: store.check_entities([EX + "flu", BAD_IRI]),
        lambda: store.edges([BAD_IRI]),
        lambda: store.degrees([EX + "flu", BAD_IRI]),
        lambda: store.edges_among([EX + "flu"], [EX + "cough", BAD_IRI]),
        lambda: store.attributes(BAD_IRI),
        lambda: describe(store, [BAD_IRI]),
        lambda: store.label(BAD_IRI),
        lambda: store.label_links([EX + "flu"], [BAD_IRI]),
        lambda: graph.paths(flu, odd),
    ]
    for call in calls:
        with pytest.raises(InvalidIRIError, match=r"is not an IRI.*percent-encoded"):
            call()
    assert store.attempts == sent
    with pytest.raises(InvalidIRIError, match=re.escape(repr(BAD_IRI))):
        store.exists(BAD_IRI)
    with pytest.raises(EntityNotFoundError):  # not an IRI, so looked up as a label
        store.resolve(BAD_IRI)
    assert BAD_IRI not in store._edges


def test_select_fills_slots_without_reading_the_terms() -> None:
    """A literal whose text looks like a slot is written once, as a literal."""
    query = Select(
        "SELECT ?v ?o WHERE { VALUES ?v {} VALUES ?o {} }",
        {"v": [Literal("VALUES ?o {}")], "o": [NamedNode(EX + "a"), NamedNode(EX + "b")]},
    )
    assert query.render() == (
        f'SELECT ?v ?o WHERE {{ VALUES ?v {{ "VALUES ?o {{}}" }} VALUES ?o {{ <{EX}a> <{EX}b> }} }}'
    )
    bound = Select("SELECT ?v WHERE { ?v ?p ?o }", bind={"v": Literal('a"""b')})
    assert bound.render() == 'SELECT ?v WHERE { VALUES ?v { "a\\"\\"\\"b" } ?v ?p ?o }'
    assert bound.render(inline_bind=False) == bound.text
    with pytest.raises(ValueError, match="slots"):
        Select("SELECT ?v WHERE { VALUES ?v {} }").render()


def test_triplestore_load_from_endpoint_equals_in_memory(
    endpoint: str, memory: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    out = tmp_path / "compiled"
    args = ["load", "--backend", "sparql", "--endpoint", endpoint, "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--page-size", "50"])
    assert result.exit_code == 0, result.output
    got = kg.open(out)
    assert list(got.entities) == list(memory.entities)
    assert list(got.relations) == list(memory.relations)
    assert sorted(got.triples()) == sorted(memory.triples())
    assert list(got.labels) == list(memory.labels)
    assert [got.types_of(e) for e in range(got.num_entities)] == [
        memory.types_of(e) for e in range(memory.num_entities)
    ]


def test_triplestore_unreachable_endpoint_retries_then_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/query"  # nothing listens there
    store = TripleStore(url, retries=2, backoff_s=0.01)
    with pytest.raises(KGStoreError, match=re.escape(url)) as info:
        store.edges([EX + "flu"])
    assert store.attempts == 3
    assert "3 tries" in str(info.value)


class _StallAfter(http.server.BaseHTTPRequestHandler):
    """Forwards the first ``answers`` queries to the real endpoint, then never answers."""

    upstream = ""
    answers = 0
    seen = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        if type(self).seen > self.answers:
            time.sleep(3)
            return
        request = urllib.request.Request(self.upstream, data=body, headers=dict(self.headers))
        with urllib.request.urlopen(request, timeout=5) as response:
            payload = response.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/sparql-results+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_triplestore_query_timeout_fails_whole_and_caches_nothing(endpoint: str) -> None:
    handler = type("Stall", (_StallAfter,), {"upstream": endpoint, "answers": 1})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/query"
    try:
        store = TripleStore(url, batch=1, timeout_s=0.3, retries=1, backoff_s=0.01)
        # query 1: the first batch of edges; 2: stalls, and its retry too
        with pytest.raises(KGStoreError, match=r"timeout_s=0\.3"):
            store.edges([EX + "flu", EX + "cold", EX + "covid"])
        assert store.cached_entities == 0  # the answered batch was not cached alone
        assert store.attempts == 1 + 2
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "command",
    [
        ["path", "Influenza", "COVID-19"],
        ["path", "Influenza", "COVID-19", "--json"],
        ["neighbors", "flu"],
        ["neighbors", "flu", "--limit", "2"],  # the two most specific neighbours, on both
    ],
)
def test_triplestore_cli_queries_match_compiled_kg(
    command: list[str], endpoint: str, embedded: Path, triples: list[Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    compiled = tmp_path / "kg"
    assert runner.invoke(app, ["load", *map(str, triples), "-o", str(compiled)]).exit_code == 0
    want = runner.invoke(app, [*command, "--kg", str(compiled)])
    assert want.exit_code == 0, want.output
    for source in (["--endpoint", endpoint], ["--store", str(embedded)]):
        got = runner.invoke(app, [*command, *source])
        assert got.exit_code == 0, got.output
        assert got.output == want.output


def test_store_graph_fetches_a_whole_frontier_in_one_request(
    endpoint: str, memory: kg.KnowledgeGraph
) -> None:
    """Each hop asks once for its whole frontier's edges and once for its candidates' degrees,
    however many nodes it holds; asked again, the same subgraph comes from the caches, and
    once they are cleared it costs the same requests again."""
    seeds, hops, max_nodes = [GEN + "e42"], 2, 200
    store = TripleStore(endpoint)
    graph = StoreGraph(store)
    ids = [graph.entity_id(s) for s in seeds]
    want = memory.subgraph([memory.entity_id(s) for s in seeds], hops=hops, max_nodes=max_nodes)
    assert (want.hop == 1).sum() >= 4, "the case needs a multi-node frontier at hop 2"
    # seed check + (edges, degrees) per hop + last hop's edges among the nodes + their names
    per_subgraph = 1 + 2 * hops + 2
    for cached, sent in [(False, per_subgraph), (True, 0), (False, per_subgraph)]:
        if not cached:
            graph.clear_cache()
        before = store.attempts
        got = graph.subgraph(ids, hops=hops, max_nodes=max_nodes)
        assert store.attempts - before == sent, (cached, store.attempts - before)
        assert [graph.iri(n) for n in got.nodes] == [memory.iri(n) for n in want.nodes]
        assert got.hop.tolist() == want.hop.tolist()
        assert [graph.text(n) for n in got.nodes] == [memory.text(n) for n in want.nodes]
        assert store.attempts - before == sent  # the texts were fetched with the subgraph
