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
