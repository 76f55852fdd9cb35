"""Label-path counts by relation sequence: the walks a text's entities take to each class node."""

from __future__ import annotations

import numpy as np
import pytest

import kg
from fusion.path_counts import PathCounter, fit_sequences
from kg.graph import Triple

from .conftest import graph_from_rows

EX = "http://example.org/paths/"

# a evolves_from b, b has_type water; a and c share the egg group g; c has_type fire;
# d has_type water and nothing else; water super_effective fire (label to label).
TRIPLES = """
a evolves_from b
b has_type water
a in_group g
c in_group g
c has_type fire
a has_type water
d has_type water
water super_effective fire
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    return graph_from_rows(TRIPLES, EX, tmp_path_factory.mktemp("paths"))


def ids(graph: kg.KnowledgeGraph, *names: str) -> list[int]:
    return [graph.entity_id(EX + n) for n in names]


def rel(graph: kg.KnowledgeGraph, name: str, inverse: bool = False) -> int:
    r = graph.relation_id(EX + name)
    return r + graph.num_relations if inverse else r


def test_walks_are_counted_by_relation_sequence_per_label(graph: kg.KnowledgeGraph) -> None:
    counter = PathCounter(graph, ids(graph, "water", "fire"), hops=3)
    walks = counter.walk_counts(ids(graph, "a"))
    evolves, typed = rel(graph, "evolves_from"), rel(graph, "has_type")
    group, group_inv = rel(graph, "in_group"), rel(graph, "in_group", inverse=True)
    assert walks[(typed,)].tolist() == [1, 0]  # a's own fact
    assert walks[(evolves, typed)].tolist() == [1, 0]  # a -> b -> water
    assert walks[(group, group_inv, typed)].tolist() == [0, 1]  # a -> g <- c -> fire
    # no walk passes through a label node (water -> fire would add a water/fire sequence)
    assert all(s[0] != typed or len(s) == 1 for s in walks)
    assert counter.name((group, group_inv, typed)) == "in group/^in group/has type"


def test_masking_hides_a_texts_own_label_facts_everywhere(graph: kg.KnowledgeGraph) -> None:
    counter = PathCounter(graph, ids(graph, "water", "fire"), hops=3)
    typed = rel(graph, "has_type")
    masked = counter.walk_counts(ids(graph, "a"), masked=ids(graph, "a"))
    assert (typed,) not in masked  # the lookup is gone ...
    assert (rel(graph, "evolves_from"), typed) in masked  # ... the reasoning is not


def test_hops_limit_the_walks_and_features_follow_the_vocabulary(graph: kg.KnowledgeGraph) -> None:
    two = PathCounter(graph, ids(graph, "water", "fire"), hops=2)
    assert max(len(s) for s in two.walk_counts(ids(graph, "a"))) == 2
    walks = [two.walk_counts(ids(graph, e)) for e in ("a", "c", "b")]
    vocab = fit_sequences(walks, max_sequences=10, min_texts=1)
    assert vocab[0] == (rel(graph, "has_type"),)  # reaches a label in every text: first
    two.sequences = vocab
    features = two.features(ids(graph, "a"))
    assert features.shape == (len(vocab) * 2,) and two.dims == len(vocab) * 2
    assert features[0] == pytest.approx(np.log1p(1))  # a has_type water, column water
    assert fit_sequences(walks, max_sequences=10, min_texts=4) == []


def test_without_and_only_recount_on_a_changed_kg(graph: kg.KnowledgeGraph) -> None:
    counter = PathCounter(graph, ids(graph, "water", "fire"), hops=2)
    a, b, water = ids(graph, "a", "b", "water")
    fact = Triple(b, rel(graph, "has_type"), water)
    step = Triple(a, rel(graph, "evolves_from"), b)
    path = (rel(graph, "evolves_from"), rel(graph, "has_type"))
    assert path in counter.walk_counts([a])
    assert path not in counter.without([fact]).walk_counts([a])
    kept = counter.only([step, fact]).walk_counts([a])
    assert set(kept) == {path}  # nothing but the kept path remains
    assert path in counter.walk_counts([a])  # the original counter is unchanged


def test_bad_settings_and_ids_are_refused(graph: kg.KnowledgeGraph) -> None:
    with pytest.raises(ValueError, match="hops must be between 1 and 4"):
        PathCounter(graph, ids(graph, "water"), hops=5)
    with pytest.raises(ValueError, match="distinct"):
        PathCounter(graph, ids(graph, "water", "water"))
    counter = PathCounter(graph, ids(graph, "water"))
    with pytest.raises(kg.EntityNotFoundError, match="linked entity 999"):
        counter.walk_counts([999])


def _walks_by_definition(
    graph: kg.KnowledgeGraph,
    counter: PathCounter,
    linked: list[int],
    masked: set[int],
    triples: list[Triple],
) -> dict[tuple[int, ...], list[int]]:
    """The module docstring's rule, one walk at a time over ``triples``: from each linked
    entity, every walk of at most ``hops`` steps whose inner nodes are neither a label node,
    nor linked, nor a hub of the whole KG, ending on a label node by a step whose source is not
    masked."""
    R, labels = graph.num_relations, list(counter.label_nodes)
    steps: dict[int, list[tuple[int, int]]] = {}
    for t in triples:
        steps.setdefault(t.subject, []).append((t.relation, t.object))
        steps.setdefault(t.object, []).append((t.relation + R, t.subject))
    degree = np.diff(graph.indptr)
    out: dict[tuple[int, ...], list[int]] = {}

    def walk(node: int, sequence: tuple[int, ...]) -> None:
        for r, nxt in steps.get(node, []):
            path = (*sequence, r)
            if nxt in labels and node not in masked:
                out.setdefault(path, [0] * len(labels))[labels.index(nxt)] += 1
            inner = nxt not in labels and nxt not in linked and degree[nxt] <= counter.max_degree
            if len(path) < counter.hops and inner:
                walk(nxt, path)

    for e in sorted(set(linked)):
        walk(e, ())
    return out


def test_walk_counts_equal_the_rule_walk_by_walk_on_random_graphs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The frontier-at-once counting against walks enumerated one by one, on random graphs with
    label-to-label facts, masks, a hub cap, and triples removed (`without`) or kept alone
    (`only`)."""
    rng = np.random.default_rng(7)
    for trial in range(4):
        rows = {f"n{rng.integers(12)} r{rng.integers(3)} n{rng.integers(12)}" for _ in range(40)}
        rows |= {f"n{rng.integers(12)} has_type t{rng.integers(3)}" for _ in range(10)}
        rows |= {"t0 opposes t1"}
        (tmp_path / f"g{trial}").mkdir()
        graph = graph_from_rows("\n".join(sorted(rows)), EX, tmp_path / f"g{trial}")
        labels = [graph.entity_id(EX + f"t{j}") for j in range(3) if graph.has_entity(EX + f"t{j}")]
        every = list(graph.triples())
        nodes = [i for i in range(graph.num_entities) if i not in labels]
        for hops in (1, 2, 3, 4):
            counter = PathCounter(graph, labels, hops=hops, max_degree=9)
            for _ in range(5):
                linked = rng.choice(nodes, size=2, replace=False).tolist()
                masked = {linked[0]} if rng.random() < 0.5 else set()
                picked = [every[i] for i in rng.choice(len(every), size=8, replace=False)]
                rest = [t for t in every if t not in picked]
                for changed, kept in ((counter, every), (counter.without(picked), rest)):
                    got = changed.walk_counts(linked, masked)
                    want = _walks_by_definition(graph, counter, linked, masked, kept)
                    assert {k: v.tolist() for k, v in got.items()} == want
                got = counter.only(picked).walk_counts(linked, masked)
                assert {k: v.tolist() for k, v in got.items()} == _walks_by_definition(
                    graph, counter, linked, masked, picked
                )
