"""The "GNN is a Counter?" baseline: label facts of linked entities and of their 2-hop peers."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

import kg
from fusion.counter import LabelCounter, counter_features, counter_matrix
from kg.compile import GraphBuilder
from kg.rewire import rewire

from .conftest import graph_from_rows

EXC = "http://example.org/counter/"
POKE_NAMES = ["a", "b", "c", "d", "e", "f", "ch1", "blue", "red", "water", "fire"]

# Degrees: a 3 (b, ch1, blue), b 3, ch1 4 (a, b, c, d), blue 2 (a, d), water 4, fire 2.
POKE = """
a evolves_from b
a in_chain ch1
b in_chain ch1
c in_chain ch1
d in_chain ch1
a has_color blue
d has_color blue
e has_color red
b has_type water
c has_type fire
d has_type water
f has_type water
water super_effective fire
"""


@pytest.fixture(scope="module")
def poke(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    return graph_from_rows(POKE, EXC, tmp_path_factory.mktemp("counter"))


def _ids(graph: kg.KnowledgeGraph, *names: str) -> list[int]:
    return [graph.entity_id(EXC + n) for n in names]


def _counts(
    graph: kg.KnowledgeGraph,
    linked: list[str],
    masked: tuple[str, ...] = (),
    max_degree: int | None = 1000,
) -> list[list[int]]:
    counter = LabelCounter(graph, _ids(graph, "water", "fire"), max_degree=max_degree)
    return counter.counts(_ids(graph, *linked), set(_ids(graph, *masked))).tolist()


def test_two_hop_counts_distinct_known_entities_per_label(poke: kg.KnowledgeGraph) -> None:
    # a - ch1 - {b, c, d}, a - blue - d (d once), a - b - ch1 (no label): water b, d; fire c
    assert _counts(poke, ["a"]) == [[0, 0], [2, 1]]


def test_direct_facts_of_linked_entities(poke: kg.KnowledgeGraph) -> None:
    # b is water itself; its peers through a and ch1: c (fire), d (water)
    assert _counts(poke, ["b"]) == [[1, 0], [1, 1]]
    assert _counts(poke, ["b", "c"]) == [[1, 1], [1, 0]]  # linked entities are never peers


def test_label_nodes_are_never_the_shared_neighbour(poke: kg.KnowledgeGraph) -> None:
    # d - water - {b, f} would add f; only ch1 and blue may join d to others
    assert _counts(poke, ["d"]) == [[1, 0], [1, 1]]


def test_masking_hides_own_label_facts_direct_and_as_a_peer(poke: kg.KnowledgeGraph) -> None:
    assert _counts(poke, ["b"], masked=("b",)) == [[0, 0], [1, 1]]
    assert _counts(poke, ["a"], masked=("d",)) == [[0, 0], [1, 1]]


def test_hub_cap_skips_shared_neighbours_with_a_larger_degree(poke: kg.KnowledgeGraph) -> None:
    assert _counts(poke, ["a"], max_degree=2) == [[0, 0], [1, 0]]  # only blue: d
    assert _counts(poke, ["a"], max_degree=3) == [[0, 0], [1, 0]]  # blue, b: d and ch1
    assert _counts(poke, ["a"], max_degree=None) == [[0, 0], [2, 1]]


def test_features_layout_is_log1p_direct_then_two_hop(poke: kg.KnowledgeGraph) -> None:
    water, fire = _ids(poke, "water", "fire")
    (b,) = _ids(poke, "b")
    feats = counter_features(poke, [b], [water, fire])
    assert feats.dtype == np.float32 and feats.shape == (4,)
    np.testing.assert_allclose(feats, np.log1p([1, 0, 1, 1]), rtol=1e-6)
    swapped = counter_features(poke, [b], [fire, water])
    np.testing.assert_allclose(swapped, np.log1p([0, 1, 1, 1]), rtol=1e-6)


def test_matrix_rows_shapes_masks_and_empty_texts(poke: kg.KnowledgeGraph) -> None:
    a, b = _ids(poke, "a", "b")
    labels = _ids(poke, "water", "fire")
    X = counter_matrix(poke, [[a], [b], [], [b, b]], labels, [None, {b}, set(), set()])
    assert X.shape == (4, 4) and X.dtype == np.float32
    np.testing.assert_allclose(X[0], np.log1p([0, 0, 2, 1]), rtol=1e-6)
    np.testing.assert_allclose(X[1], np.log1p([0, 0, 1, 1]), rtol=1e-6)
    np.testing.assert_array_equal(X[2], 0)  # nothing linked, no evidence
    np.testing.assert_allclose(X[3], np.log1p([1, 0, 1, 1]), rtol=1e-6)  # repeats once
    assert counter_matrix(poke, [], labels).shape == (0, 4)


def test_bad_arguments_are_refused(poke: kg.KnowledgeGraph) -> None:
    labels = _ids(poke, "water", "fire")
    with pytest.raises(kg.EntityNotFoundError, match="linked entity"):
        counter_features(poke, [poke.num_entities], labels)
    with pytest.raises(ValueError, match="distinct"):
        LabelCounter(poke, [labels[0], labels[0]])
    with pytest.raises(ValueError, match="masked_lists"):
        counter_matrix(poke, [[0], [1]], labels, [None])
    with pytest.raises(ValueError, match="max_degree"):
        LabelCounter(poke, labels, max_degree=0)


def test_a_few_milliseconds_per_text_on_a_10k_entity_graph() -> None:
    rng = np.random.default_rng(0)
    n, edges, num_labels = 10_000, 60_000, 20
    builder = GraphBuilder()
    src, dst = rng.integers(0, n, edges), rng.integers(0, n, edges)
    rel = rng.integers(0, 10, edges)
    builder.add_edges(
        [f"{EXC}e{i}" for i in src], [f"{EXC}r{r}" for r in rel], [f"{EXC}e{i}" for i in dst]
    )
    graph = builder.build()
    counter = LabelCounter(graph, list(range(num_labels)))
    texts = [rng.integers(0, graph.num_entities, 3).tolist() for _ in range(200)]
    start = time.perf_counter()
    X = counter.matrix(texts)
    per_text = (time.perf_counter() - start) / len(texts)
    assert X.shape == (200, 2 * num_labels) and X[:, num_labels:].sum() > 0
    assert per_text < 0.01, f"{per_text * 1e3:.2f} ms per text"


@pytest.mark.integration
def test_pokedex_unseen_species_counts_beat_majority_and_shuffled_kg(shared_data: Path) -> None:
    folder = shared_data / "pokedex"
    graph = kg.load(
        [folder / "kg.nt", folder / "type_facts_known.nt", folder / "ability_descriptions.nt"]
    )
    with (folder / "label_map.tsv").open() as f:
        label_map = {row["label"]: row["entity"] for row in csv.DictReader(f, delimiter="\t")}
    names = list(label_map)
    labels = [graph.entity_id(label_map[name]) for name in names]
    with (folder / "test_unseen.csv").open() as f:
        rows = list(csv.DictReader(f))
    linked = [[graph.resolve(row["species"])] for row in rows]
    y = np.array([names.index(row["label"]) for row in rows])

    def accuracy(g: kg.KnowledgeGraph) -> float:
        two_hop = counter_matrix(g, linked, labels)[:, len(labels) :]
        return float(np.mean(two_hop.argmax(axis=1) == y))

    assert accuracy(graph) > 0.4  # majority class: 0.19
    assert accuracy(rewire(graph, seed=0)) < 0.25  # the shuffled KG loses it


def test_paths_by_relation_count_every_path_by_its_first_hop(poke: kg.KnowledgeGraph) -> None:
    counter = LabelCounter(poke, _ids(poke, "water", "fire"), by_relation=True)
    relations = [poke.relation_iri(r)[len(EXC) :] for r in range(poke.num_relations)]
    paths = counter.paths_by_relation(_ids(poke, "a"), np.array([], dtype=np.int64))
    by_name = {name: paths[r].tolist() for r, name in enumerate(relations) if paths[r].any()}
    # a -evolves_from- b (water itself); a -in_chain- ch1 - {b, d: water; c: fire};
    # a -has_color- blue - d (water): d counts twice in all, once per path
    assert by_name == {"evolves_from": [1, 0], "in_chain": [2, 1], "has_color": [1, 0]}
    hidden = np.array(_ids(poke, "d"))
    masked = counter.paths_by_relation(_ids(poke, "a"), hidden)
    assert masked.sum() == paths.sum() - 2  # d reached through ch1 and blue
    features = counter.features(_ids(poke, "a"))
    assert features.shape == (counter.dims,) == (2 * 2 + poke.num_relations * 2,)
    assert np.allclose(features[4:], np.log1p(paths.reshape(-1)))


@pytest.mark.parametrize(
    "removed",
    [
        ["b has_type water"],  # a label fact
        ["a in_chain ch1", "d has_color blue"],  # the shared neighbours' edges
        ["b in_chain ch1", "b has_type water", "a has_color blue"],  # relations all stay
        ["a evolves_from z"],  # not in the KG: nothing changes
    ],
)
def test_without_counts_as_if_the_kg_lacked_those_triples(
    poke: kg.KnowledgeGraph, tmp_path: Path, removed: list[str]
) -> None:
    """What explanations rely on: removing a path recounts on the KG without its triples."""
    lines = [line for line in POKE.strip().splitlines() if line.strip() not in removed]
    path = tmp_path / "smaller.nt"
    path.write_text(
        "".join(f"<{EXC}{s}> <{EXC}{p}> <{EXC}{o}> .\n" for s, p, o in map(str.split, lines))
    )
    smaller = kg.load(path)
    triples = []
    for line in removed:
        s, p, o = line.split()
        if poke.has_entity(EXC + o):
            triples.append(
                kg.Triple(
                    poke.entity_id(EXC + s), poke.relation_id(EXC + p), poke.entity_id(EXC + o)
                )
            )

    def counter(graph: kg.KnowledgeGraph) -> LabelCounter:
        return LabelCounter(graph, _ids(graph, "water", "fire"), max_degree=3, by_relation=True)

    before = counter(poke)
    after = before.without(triples)
    for linked in (["a"], ["a", "d"], ["c"], ["b", "e"]):
        want = counter(smaller).features(_ids(smaller, *linked))
        assert after.features(_ids(poke, *linked)).tolist() == want.tolist(), linked
    # the counter it came from is unchanged
    assert (
        before.features(_ids(poke, "a")).tolist()
        == counter(poke).features(_ids(poke, "a")).tolist()
    )
    if removed[0] == "b has_type water":
        assert not np.array_equal(after.features(_ids(poke, "a")), before.features(_ids(poke, "a")))


@pytest.mark.parametrize(
    "kept",
    [
        ["a in_chain ch1", "b in_chain ch1", "c in_chain ch1", "b has_type water"],
        ["c in_chain ch1", "a in_chain ch1", "c has_type fire", "water super_effective fire"],
        ["d has_color blue", "a has_color blue", "d has_type water", "a has_type fire"],
    ],
)
def test_only_counts_as_if_the_kg_held_nothing_else(
    poke: kg.KnowledgeGraph, tmp_path: Path, kept: list[str]
) -> None:
    """Sufficiency in explanations: the counts of a path's triples alone, triples the KG
    lacks ignored (a label fact is looked up in the row of its end with fewer edges)."""
    present = [line for line in kept if line in POKE.splitlines()]  # not "a has_type fire"
    names = [
        f'<{EXC}{n}> <http://www.w3.org/2000/01/rdf-schema#label> "{n}" .\n' for n in POKE_NAMES
    ]
    path = tmp_path / "only.nt"
    path.write_text(
        "".join(f"<{EXC}{s}> <{EXC}{p}> <{EXC}{o}> .\n" for s, p, o in map(str.split, present))
        + "".join(names)  # every entity, with no edge beyond ``present``
    )
    smaller = kg.load(path)
    triples = [
        kg.Triple(poke.entity_id(EXC + s), poke.relation_id(EXC + p), poke.entity_id(EXC + o))
        for s, p, o in (line.split() for line in kept)
    ]
    only = LabelCounter(poke, _ids(poke, "water", "fire")).only(triples)
    want_counter = LabelCounter(smaller, _ids(smaller, "water", "fire"))
    for linked in (["a"], ["c"], ["water"], ["a", "d"]):
        want = want_counter.features(_ids(smaller, *linked))
        assert only.features(_ids(poke, *linked)).tolist() == want.tolist(), linked
    assert only.features(_ids(poke, "a")).any()
