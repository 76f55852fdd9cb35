"""The in-memory `KnowledgeGraph` and a `StoreGraph` over an embedded Oxigraph store holding the
same triples answer every question of the `Graph` protocol alike: the algorithms are written once,
so a model sees the same graph whichever backend holds it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kg
from kg.cli import app
from kg.store_graph import StoreGraph

pytestmark = pytest.mark.integration

EX = "http://example.org/tiny/"
GEN = "http://example.org/gen/"


@pytest.fixture(scope="module")
def triples(tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """tiny.ttl plus a random 60-node graph with ties, hubs, self-loops, types and labels."""
    rng = random.Random(11)
    lines = set()
    for _ in range(220):
        s, o = rng.randrange(60), int(rng.paretovariate(1.2)) % 60
        if rng.random() < 0.5:
            s, o = o, s
        lines.add(f"<{GEN}e{s:02d}> <{GEN}r{rng.randrange(3)}> <{GEN}e{o:02d}> .")
    for e in range(0, 60, 3):
        lines.add(f'<{GEN}e{e:02d}> <http://www.w3.org/2000/01/rdf-schema#label> "node {e}" .')
        lines.add(f"<{GEN}e{e:02d}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{GEN}T> .")
    path = tmp_path_factory.mktemp("gen") / "gen.nt"
    path.write_text("\n".join(sorted(lines)) + "\n")
    return [tiny_ttl, path]


@pytest.fixture(scope="module")
def memory(triples: list[Path]) -> kg.KnowledgeGraph:
    return kg.load(triples)


@pytest.fixture(scope="module")
def store_dir(triples: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("oxigraph-parity") / "store"
    args = ["load", *map(str, triples), "--backend", "oxigraph", "--store", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return store


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
