"""`LabelCounter` is written once against the `Graph` protocol: over a compiled KG (read by
slicing its CSR arrays), over the same KG seen through the protocol alone, and over an embedded
Oxigraph store holding the same triples, every mode gives the same features, also as if some
triples were gone (`without`) or as if only some were there (`only`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kg
from fusion.counter import LabelCounter
from kg.store_graph import StoreGraph
from tests.conftest import oxigraph_store

pytestmark = pytest.mark.integration

EX = "http://example.org/parity/"
LABELS = [EX + "water", EX + "fire", EX + "grass"]


@pytest.fixture(scope="module")
def triples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 entities: random edges of 4 relations with hubs and self-loops, a third of the
    entities typed by a label node, and a triple between two label nodes."""
    rng = random.Random(5)
    lines = {f"<{LABELS[0]}> <{EX}beats> <{LABELS[1]}> ."}
    for _ in range(260):
        s, o = rng.randrange(70), int(rng.paretovariate(1.1)) % 70
        lines.add(f"<{EX}e{s:02d}> <{EX}r{rng.randrange(4)}> <{EX}e{o:02d}> .")
    for e in range(70):
        lines.add(f"<{EX}e{e:02d}> <{EX}r3> <{EX}e{e * 7 % 70:02d}> .")
        if e % 3 == 0:
            lines.add(f"<{EX}e{e:02d}> <{EX}has_type> <{rng.choice(LABELS)}> .")
    path = tmp_path_factory.mktemp("counter-parity") / "kg.nt"
    path.write_text("\n".join(sorted(lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def memory(triples: Path) -> kg.KnowledgeGraph:
    return kg.load(triples)


@pytest.fixture(scope="module")
def store_dir(triples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return oxigraph_store([triples], tmp_path_factory.mktemp("counter-oxigraph"))


class ProtocolOnly:
    """A graph read through the protocol's calls alone: it does not say it is compiled."""

    compiled = None

    def __init__(self, graph: kg.KnowledgeGraph):
        self.graph = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)


Ids = Callable[[list[str]], list[int]]


def _counters(
    memory: kg.KnowledgeGraph, store_dir: Path, **settings: Any
) -> list[tuple[LabelCounter, Ids]]:
    """The same counter three ways, each with the function turning IRIs into its ids."""
    out: list[tuple[LabelCounter, Ids]] = []
    graphs: list[Any] = [memory, ProtocolOnly(memory), StoreGraph.connect(store_dir)]
    for graph in graphs:
        counter = LabelCounter(graph, [graph.entity_id(i) for i in LABELS], **settings)
        out.append((counter, _ids_of(graph)))
    readers = [repr(c).split("reader=")[1] for c, _ in out]
    assert readers == ["ArrayReader)", "ProtocolReader)", "ProtocolReader)"]
    return out


def _ids_of(graph: Any) -> Ids:
    return lambda iris: [graph.entity_id(i) for i in iris]


def _cases() -> list[list[str]]:
    rng = random.Random(9)
    cases = [[f"{EX}e{rng.randrange(70):02d}" for _ in range(rng.randint(1, 4))] for _ in range(12)]
    return [*cases, [LABELS[0], f"{EX}e00"], [f"{EX}e03", f"{EX}e03"], []]


def _removed(memory: kg.KnowledgeGraph, linked: list[str], every: int) -> list[kg.Triple]:
    """Some triples around ``linked``: their own, their neighbours' and label facts."""
    ids = [memory.entity_id(i) for i in linked]
    near = set(ids) | {n.node for e in ids for n in memory.neighbors_of(e)}
    return [t for t in memory.triples() if t.subject in near or t.object in near][::every]


def _named(memory: kg.KnowledgeGraph, triples: list[kg.Triple]) -> list[tuple[str, int, str]]:
    return [(memory.iri(t.subject), t.relation, memory.iri(t.object)) for t in triples]


def _as_triples(ids: Ids, named: list[tuple[str, int, str]]) -> list[kg.Triple]:
    return [kg.Triple(ids([s])[0], r, ids([o])[0]) for s, r, o in named]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_degree": None},
        {"max_degree": 6},
        {"max_degree": 6, "by_relation": True},
        {"max_degree": 1000, "by_relation": True, "path_max_degree": 5},
    ],
)
def test_counter_parity_features_in_every_mode(
    memory: kg.KnowledgeGraph, store_dir: Path, settings: dict[str, Any]
) -> None:
    counters = _counters(memory, store_dir, **settings)
    assert len({c.dims for c, _ in counters}) == 1
    seen = set()
    for linked in _cases():
        for masked in ([], linked[:1]):
            rows = [c.features(ids(linked), ids(masked)).tolist() for c, ids in counters]
            assert rows[1] == rows[0] and rows[2] == rows[0], (linked, masked)
            seen.add(tuple(rows[0]))
    assert len(seen) > 5  # the cases tell texts apart: the comparison is not of zeros


@pytest.mark.parametrize("by_relation", [False, True])
def test_counter_parity_without_and_only(
    memory: kg.KnowledgeGraph, store_dir: Path, by_relation: bool
) -> None:
    counters = _counters(memory, store_dir, max_degree=6, by_relation=by_relation)
    changed = 0
    for linked in _cases()[:8]:
        for every in (1, 3):
            named = _named(memory, _removed(memory, linked, every))
            without = [
                c.without(_as_triples(ids, named)).features(ids(linked)).tolist()
                for c, ids in counters
            ]
            only = [
                c.only(_as_triples(ids, named)).features(ids(linked)).tolist()
                for c, ids in counters
            ]
            assert without[1] == without[0] and without[2] == without[0], (linked, every)
            assert only[1] == only[0] and only[2] == only[0], (linked, every)
            whole = counters[0][0].features(counters[0][1](linked)).tolist()
            changed += without[0] != whole
    assert changed >= 4


def test_counter_without_equals_counting_on_the_smaller_kg(
    memory: kg.KnowledgeGraph, store_dir: Path, triples: Path, tmp_path: Path
) -> None:
    """The definition `without` answers to, through the protocol: a KG compiled without them."""
    linked = _cases()[0]
    gone = _removed(memory, linked, 2)
    named = set(_named(memory, gone))
    kept = [
        f"<{memory.iri(t.subject)}> <{memory.relation_iri(t.relation)}> <{memory.iri(t.object)}> ."
        for t in memory.triples()
        if (memory.iri(t.subject), t.relation, memory.iri(t.object)) not in named
    ]
    smaller_file = tmp_path / "smaller.nt"
    smaller_file.write_text("\n".join(kept) + "\n")
    smaller = kg.load(smaller_file)
    assert smaller.num_relations == memory.num_relations  # relation ids stay comparable
    want = LabelCounter(smaller, [smaller.entity_id(i) for i in LABELS], max_degree=6)
    want_row = want.features([smaller.entity_id(i) for i in linked]).tolist()
    for counter, ids in _counters(memory, store_dir, max_degree=6):
        got = counter.without(_as_triples(ids, sorted(named))).features(ids(linked)).tolist()
        assert got == want_row


def test_counter_matrix_over_a_store_matches_in_memory(
    memory: kg.KnowledgeGraph, store_dir: Path
) -> None:
    (compiled, memory_ids), _, (store, store_ids) = _counters(memory, store_dir, max_degree=6)
    cases = _cases()
    want = compiled.matrix([memory_ids(c) for c in cases], [memory_ids(c[:1]) for c in cases])
    got = store.matrix([store_ids(c) for c in cases], [store_ids(c[:1]) for c in cases])
    np.testing.assert_array_equal(got, want)
