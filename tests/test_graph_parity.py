"""The in-memory `KnowledgeGraph` and a `StoreGraph` over an embedded Oxigraph store holding the
same triples answer every question of the `Graph` protocol alike: the algorithms are written once,
so a model sees the same graph whichever backend holds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kg
from kg.errors import EntityNotFoundError, KGStoreError
from kg.sparql import Row, Select
from kg.store_graph import StoreGraph
from kg.subgraph import k_hop_subgraph
from kg.triplestore import TripleStore
from tests.conftest import oxigraph_store
from tests.test_triplestore import EX, GEN, random_graph

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triples(tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """tiny.ttl plus a random graph and an unlabelled entity (named by its IRI)."""
    joint_pain = f"<{GEN}joint_pain> <{GEN}r0> <{GEN}e01> ."
    return [tiny_ttl, random_graph(tmp_path_factory.mktemp("gen") / "gen.nt", 11, joint_pain)]


@pytest.fixture(scope="module")
def memory(triples: list[Path]) -> kg.KnowledgeGraph:
    return kg.load(triples)


@pytest.fixture(scope="module")
def store_dir(triples: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return oxigraph_store(triples, tmp_path_factory.mktemp("oxigraph-parity"))


@pytest.fixture
def store(store_dir: Path) -> StoreGraph:
    """A fresh view each test, so no test leans on what another interned or cached."""
    return StoreGraph.connect(store_dir)


ENTITIES = [EX + "flu", EX + "cough", EX + "covid", GEN + "e00", GEN + "e03", GEN + "e42"]


def _rows_by_iri(graph, rows: dict[int, list[tuple[int, int]]]) -> dict[str, list]:
    return {
        graph.iri(e): [
            (graph.relation_iri(r), r >= graph.num_relations, graph.iri(n)) for r, n in row
        ]
        for e, row in rows.items()
    }


def test_graph_parity_edge_entries_in_the_same_order(
    memory: kg.KnowledgeGraph, store: StoreGraph
) -> None:
    want = memory.edge_entries([memory.entity_id(i) for i in ENTITIES])
    got = store.edge_entries([store.entity_id(i) for i in ENTITIES])
    assert _rows_by_iri(store, got) == _rows_by_iri(memory, want)
    assert any(len(row) > 3 for row in want.values())  # a hub is among them


def test_graph_parity_degrees_of(memory: kg.KnowledgeGraph, store: StoreGraph) -> None:
    want = memory.degrees_of([memory.entity_id(i) for i in ENTITIES])
    got = store.degrees_of([store.entity_id(i) for i in ENTITIES])
    assert got.tolist() == want.tolist()
    assert want.tolist() == [memory.degree(memory.entity_id(i)) for i in ENTITIES]


def test_graph_parity_links_to(memory: kg.KnowledgeGraph, store: StoreGraph) -> None:
    targets = [EX + "fever", EX + "cough", GEN + "e00", GEN + "e01", GEN + "e03"]

    def named(graph, links: dict[int, set[int]]) -> dict[str, set[str]]:
        return {graph.iri(e): {graph.iri(t) for t in ts} for e, ts in links.items()}

    want = memory.links_to(
        [memory.entity_id(i) for i in ENTITIES], [memory.entity_id(t) for t in targets]
    )
    got = store.links_to(
        [store.entity_id(i) for i in ENTITIES], [store.entity_id(t) for t in targets]
    )
    assert named(store, got) == named(memory, want)
    assert any(want.values())


SUBGRAPH_CASES = [
    ([EX + "flu"], 2, 128),
    ([EX + "flu"], 2, 3),
    ([EX + "cough"], 1, 2),
    ([EX + "covid", EX + "hay_fever"], 2, 4),
    ([GEN + "e00"], 2, 10),
    ([GEN + "e03", GEN + "e17"], 3, 25),
    ([GEN + "e42"], 2, 200),
    ([GEN + "e09", GEN + "e09", GEN + "e30"], 1, 1),
    ([GEN + "e05"], 0, 5),
]


def _subgraph_by_iri(graph, sub: kg.Subgraph) -> tuple[list, list, list, int]:
    triples = [(graph.iri(t.subject), t.relation, graph.iri(t.object)) for t in sub.triples()]
    return [graph.iri(n) for n in sub.nodes], sub.hop.tolist(), triples, sub.num_seeds


@pytest.mark.parametrize(("seeds", "hops", "max_nodes"), SUBGRAPH_CASES)
def test_graph_parity_compiled_subgraph_equals_the_shared_algorithm(
    memory: kg.KnowledgeGraph, seeds: list[str], hops: int, max_nodes: int
) -> None:
    """KnowledgeGraph's vectorised CSR override keeps what the protocol algorithm keeps."""
    ids = [memory.entity_id(s) for s in seeds]
    want = k_hop_subgraph(memory, ids, hops=hops, max_nodes=max_nodes)
    got = memory.subgraph(ids, hops=hops, max_nodes=max_nodes)
    assert got.nodes.tolist() == want.nodes.tolist()
    assert got.hop.tolist() == want.hop.tolist()
    assert got.edge_index.tolist() == want.edge_index.tolist()
    assert got.edge_type.tolist() == want.edge_type.tolist()
    assert got.num_seeds == want.num_seeds


@pytest.mark.parametrize(("seeds", "hops", "max_nodes"), SUBGRAPH_CASES)
def test_graph_parity_store_subgraph_equals_in_memory(
    memory: kg.KnowledgeGraph, store: StoreGraph, seeds: list[str], hops: int, max_nodes: int
) -> None:
    want = memory.subgraph([memory.entity_id(s) for s in seeds], hops=hops, max_nodes=max_nodes)
    got = store.subgraph([store.entity_id(s) for s in seeds], hops=hops, max_nodes=max_nodes)
    assert _subgraph_by_iri(store, got) == _subgraph_by_iri(memory, want)
    assert [store.text(n) for n in got.nodes] == [memory.text(n) for n in want.nodes]


def test_graph_parity_store_subgraph_sends_one_request_per_hop(store_dir: Path) -> None:
    """Seeds' degrees, then (edges, degrees) per hop, the last hop's edges, the kept nodes'
    names: however many nodes a frontier holds. Asked again, all of it comes from caches."""
    store = TripleStore(store_dir)
    calls: list[Select | str] = []
    select = store.select

    def counted(query: Select | str) -> list[Row]:
        calls.append(query)
        return select(query)

    store.select = counted  # type: ignore[method-assign]
    graph = StoreGraph(store)
    calls.clear()  # creating the graph lists the relations
    hops = 2
    sub = graph.subgraph([graph.entity_id(GEN + "e42")], hops=hops, max_nodes=200)
    assert (sub.hop == 1).sum() >= 3, "the case needs a multi-node frontier at hop 2"
    assert len(calls) == 1 + 2 * hops + 2
    graph.subgraph([graph.entity_id(GEN + "e42")], hops=hops, max_nodes=200)
    assert len(calls) == 1 + 2 * hops + 2


def test_graph_parity_store_subgraph_refuses_an_unknown_seed(store: StoreGraph) -> None:
    with pytest.raises(EntityNotFoundError, match="nowhere"):
        store.subgraph([store.entity_id(EX + "nowhere")])


def test_graph_parity_a_name_where_an_id_belongs_is_a_type_error_with_the_fix(
    memory: kg.KnowledgeGraph, store: StoreGraph
) -> None:
    for graph in (memory, store):
        with pytest.raises(TypeError, match=r"pass \[graph.resolve\('flu'\)\]"):
            graph.subgraph("flu")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="seed 'flu' is not an entity id"):
            graph.subgraph(["flu"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"resolve takes an IRI or a label .* not int 3"):
            graph.resolve(3)  # type: ignore[arg-type]
        seed = graph.resolve(EX + "flu")
        numpy_ids = np.asarray([seed])  # numpy (and torch) integer ids are ids too
        assert graph.subgraph(numpy_ids).nodes.tolist() == graph.subgraph([seed]).nodes.tolist()


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (EX + "flu", EX + "covid"),
        (EX + "cold", EX + "sars_cov_2"),
        (GEN + "e03", GEN + "e17"),
        (GEN + "e05", GEN + "e45"),  # five paths of one score: ties broken alike
        (GEN + "e10", GEN + "e17"),
    ],
)
def test_graph_parity_paths(
    memory: kg.KnowledgeGraph, store: StoreGraph, source: str, target: str
) -> None:
    want = memory.paths(memory.entity_id(source), memory.entity_id(target), k=5, max_hops=3)
    got = store.paths(store.entity_id(source), store.entity_id(target), k=5, max_hops=3)
    assert want, "the case should have paths"
    assert [p.text(store) for p in got] == [p.text(memory) for p in want]
    assert [[store.iri(e) for e in p.entities] for p in got] == [
        [memory.iri(e) for e in p.entities] for p in want
    ]
    assert [p.describe(store) for p in got] == [p.describe(memory) for p in want]


def test_graph_parity_neighbours_and_triples(memory: kg.KnowledgeGraph, store: StoreGraph) -> None:
    def to_store(e: int) -> int:
        return store.entity_id(memory.iri(e))

    checked = 0
    for iri in ENTITIES:
        m, s = memory.entity_id(iri), store.entity_id(iri)
        want = [(n.relation, memory.iri(n.node), n.outgoing) for n in memory.neighbors_of(m)]
        assert [(n.relation, store.iri(n.node), n.outgoing) for n in store.neighbors_of(s)] == want
        assert store.degree(s) == memory.degree(m)
        for n in memory.neighbors_of(m):
            subject, obj = (m, n.node) if n.outgoing else (n.node, m)
            assert store.has_triple(to_store(subject), n.relation, to_store(obj))
            backwards = memory.has_triple(obj, n.relation, subject)
            assert store.has_triple(to_store(obj), n.relation, to_store(subject)) == backwards
            checked += 1
    assert checked > 10


def test_graph_parity_names_types_and_literals(
    memory: kg.KnowledgeGraph, store: StoreGraph
) -> None:
    iris = [*ENTITIES, EX + "fever", GEN + "e06", GEN + "e07", GEN + "joint_pain"]
    for iri in iris:
        m, s = memory.entity_id(iri), store.entity_id(iri)
        assert store.label(s) == memory.label(m)
        assert store.aliases_of(s) == memory.aliases_of(m)
        assert store.names(s) == memory.names(m)
        assert store.description(s) == memory.description(m)
        assert store.text(s) == memory.text(m)
        assert [store.iri(t) for t in store.types_of(s)] == [
            memory.iri(t) for t in memory.types_of(m)
        ]
        assert store.attributes_of(s) == memory.attributes_of(m)
    assert memory.names(memory.entity_id(GEN + "joint_pain")) == ["joint pain"]
    fever = memory.entity_id(EX + "fever")
    assert memory.attributes_of(fever), "the case needs a literal attribute"
    for r in range(memory.num_relations):
        assert store.relation_iri(r) == memory.relation_iri(r)
        assert store.relation_label(r + memory.num_relations) == memory.relation_label(
            r + memory.num_relations
        )


@pytest.mark.parametrize("query", ["influenza", "Influenza", "cough", "node 3", "nod 4", "coug"])
def test_graph_parity_search_and_resolve(
    memory: kg.KnowledgeGraph, store: StoreGraph, query: str
) -> None:
    """Exact matches alike, in the same order (more edges first), and the same best match.
    Fuzzy scores weigh 3-grams by the indexed names (a store indexes its labelled entities, a
    compiled graph also the local names of unlabelled ones), so the fuzzy tail may differ."""
    want = memory.search(query, limit=5)
    got = store.search(query, limit=5)
    assert want, "the case should find something"
    exact = [(m.iri, m.label, m.alias) for m in want if m.score == 1.0]
    assert [(m.iri, m.label, m.alias) for m in got if m.score == 1.0] == exact
    assert (got[0].iri, got[0].alias) == (want[0].iri, want[0].alias)
    assert got[0].score == pytest.approx(want[0].score, abs=0.05)
    assert [store.iri(m.entity) for m in got] == [m.iri for m in got]  # the store's own ids
    if len(exact) == 1:
        assert store.iri(store.resolve(query)) == memory.iri(memory.resolve(query)) == exact[0][0]


def test_graph_parity_capabilities(memory: kg.KnowledgeGraph, store: StoreGraph) -> None:
    """What code outside kg/ asks instead of the class: whole arrays, and where it comes from."""
    assert memory.compiled is memory
    assert store.compiled is None
    assert store.names_graph.compiled is store.names_graph
    assert str(store.source) in store.stats()["source"]  # type: ignore[operator]
    assert memory.fingerprint != store.fingerprint


def test_store_graph_saved_reference_reopens_with_the_same_ids(
    store: StoreGraph, tmp_path: Path
) -> None:
    """A saved StoreGraph is a reference: reopened, the same entity and relation ids and the
    same fingerprint; a reference missing a field is refused with the file and the fix."""
    seen = [store.resolve(iri) for iri in ENTITIES]
    saved = store.save(tmp_path / "kg")
    assert sorted(p.name for p in saved.iterdir()) == ["names", "store.json"]
    again = StoreGraph.open(saved)
    assert [again.iri(e) for e in seen] == ENTITIES
    assert again.num_relations == store.num_relations
    assert again.fingerprint == store.fingerprint
    reference = json.loads((saved / "store.json").read_text())
    del reference["relations"]
    (saved / "store.json").write_text(json.dumps(reference))
    with pytest.raises(KGStoreError, match=r"store\.json has no 'relations' field; train"):
        StoreGraph.open(saved)


def _both_backends_are_graphs(memory: kg.KnowledgeGraph, store: StoreGraph) -> list[kg.Graph]:
    """Never run: mypy checks here that both classes implement the whole protocol."""
    return [memory, store]
