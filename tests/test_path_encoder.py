"""The paths encoder: its walk subgraphs hold exactly the walks to the class nodes, and its
scores depend on relational paths, never on which entity a text names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import kg
from fusion.config import ConfigError, load_config
from fusion.examples import collate_graphs
from fusion.model import FusionClassifier, ModelConfig
from fusion.path_encoder import PathEncoder
from fusion.path_graph import build_path_subgraph

from .conftest import graph_from_rows, unread_features

EX = "http://example.org/walks/"

# a and its renamed copy z have the same relational paths (both evolve from b, which is water,
# and sit in egg group g with c, which is fire); f evolves from c. hub joins everything.
TRIPLES = """
a evolves_from b
z evolves_from b
b has_type water
a in_group g
z in_group g
c in_group g
c has_type fire
f evolves_from c
a has_type water
z has_type water
d has_type water
e has_type fire
water super_effective fire
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    return graph_from_rows(TRIPLES, EX, tmp_path_factory.mktemp("walks"))


def ids(graph: kg.KnowledgeGraph, *names: str) -> list[int]:
    return [graph.entity_id(EX + n) for n in names]


def steps(graph: kg.KnowledgeGraph, sub) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    nodes = sub.n_id.tolist()
    return {
        (nodes[a], r, nodes[b])
        for (a, b), r in zip(sub.edge_index.T.tolist(), sub.edge_type.tolist(), strict=True)
    }


def brute_force_steps(
    graph: kg.KnowledgeGraph, starts: list[int], labels: list[int], hops: int, masked: set[int]
) -> set[tuple[int, int, int]]:
    """Every step of every walk of <= hops steps from a start to a label node, enumerated one
    walk at a time (inner nodes: no label, no start; masked entities' label facts skipped)."""
    found: set[tuple[int, int, int]] = set()

    def walk(node: int, path: list[tuple[int, int, int]]) -> None:
        if len(path) == hops:
            return
        lo, hi = int(graph.indptr[node]), int(graph.indptr[node + 1])
        for nbr, r in zip(
            graph.neighbors[lo:hi].tolist(), graph.edge_relations[lo:hi].tolist(), strict=True
        ):
            step = (node, r, nbr)
            if nbr in labels:
                if node not in masked:
                    found.update([*path, step])
            elif nbr not in starts:
                walk(nbr, [*path, step])

    for s in starts:
        walk(s, [])
    return found


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
@pytest.mark.parametrize("linked", [("a",), ("f",), ("a", "c"), ("d",)])
def test_walk_subgraph_holds_exactly_the_steps_of_walks_to_a_class(
    graph: kg.KnowledgeGraph, hops: int, linked: tuple[str, ...]
) -> None:
    labels = ids(graph, "water", "fire")
    starts = ids(graph, *linked)
    masked = set(starts)  # a training text's own label facts hidden
    sub = build_path_subgraph(graph, starts, labels, hops, masked=masked, max_degree=None)
    assert steps(graph, sub) == brute_force_steps(graph, starts, labels, hops, masked)
    assert sub.label_pos.tolist() == [sub.n_id.tolist().index(e) for e in labels]
    assert sub.linked.sum().item() == len(starts)
    R = graph.num_relations
    for s, r, o in steps(graph, sub):  # every step is a real triple, read in its direction
        assert graph.has_triple(s, r, o) if r < R else graph.has_triple(o, r - R, s)


def test_masked_label_facts_and_hubs_are_not_walked(graph: kg.KnowledgeGraph) -> None:
    labels = ids(graph, "water", "fire")
    (a,) = ids(graph, "a")
    typed = graph.relation_id(EX + "has_type")
    seen = steps(graph, build_path_subgraph(graph, [a], labels, 3))
    assert (a, typed, labels[0]) in seen
    hidden = steps(graph, build_path_subgraph(graph, [a], labels, 3, masked={a}))
    assert (a, typed, labels[0]) not in hidden
    (g,) = ids(graph, "g")  # the egg group has 3 members: with a cap of 2 it is a hub
    capped = steps(graph, build_path_subgraph(graph, [a], labels, 3, max_degree=2))
    assert all(g not in (s, o) for s, _, o in capped)
    assert any(g in (s, o) for s, _, o in seen)


def test_no_kg_control_keeps_the_seeds_and_no_step(graph: kg.KnowledgeGraph) -> None:
    sub = build_path_subgraph(graph, ids(graph, "a"), ids(graph, "water", "fire"), 3, use_kg=False)
    assert sub.edge_index.shape == (2, 0) and sub.num_nodes == 3


def encoder_scores(graph: kg.KnowledgeGraph, texts: list[list[str]], hops: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    encoder = PathEncoder(text_dim=8, hidden=16, num_relations=2 * graph.num_relations, layers=hops)
    encoder.eval()
    labels = ids(graph, "water", "fire")
    subs = [
        build_path_subgraph(graph, ids(graph, *t), labels, hops, masked=set(ids(graph, *t)))
        for t in texts
    ]
    batch = collate_graphs(subs)
    text = torch.ones(len(texts), 8)
    with torch.no_grad():
        scores, _ = encoder(
            text, batch.edge_index, batch.edge_type, batch.batch, batch.linked, batch.label_pos
        )
    return scores


def test_a_renamed_copy_with_the_same_relational_paths_gets_the_same_graph_score(
    graph: kg.KnowledgeGraph,
) -> None:
    scores = encoder_scores(graph, [["a"], ["z"], ["f"]])
    torch.testing.assert_close(scores[0], scores[1])  # z is a renamed copy of a
    assert not torch.allclose(scores[0], scores[2])  # f reaches the classes by other paths


def test_scores_do_not_depend_on_entity_numbering(graph: kg.KnowledgeGraph) -> None:
    """The same text scored alone and beside others (other node offsets in the batch)."""
    alone = encoder_scores(graph, [["f"]])
    together = encoder_scores(graph, [["a"], ["d"], ["f"]])
    torch.testing.assert_close(alone[0], together[2])


def test_graph_only_paths_model_learns_classes_from_paths(graph: kg.KnowledgeGraph) -> None:
    """Trained on a and c (their own type facts hidden), it classifies z (never seen) and f by
    the paths they share: evolves_from an entity of the class."""
    labels = ids(graph, "water", "fire")
    model = FusionClassifier(
        ModelConfig(mode="graph", hidden=16, dropout=0.0, graph_encoder="paths", counts=False),
        None,
        unread_features(graph, 4),
        2 * graph.num_relations,
        2,
        8,
        uses_label_nodes=True,
        path_rounds=2,
    )
    train = [(["a"], 0), (["f"], 1)]

    def batch(items: list[tuple[list[str], int]], mask: bool):  # type: ignore[no-untyped-def]
        subs = [
            build_path_subgraph(
                graph, ids(graph, *t), labels, 2, masked=set(ids(graph, *t)) if mask else set()
            )
            for t, _ in items
        ]
        return collate_graphs(subs), torch.tensor([y for _, y in items])

    graphs, target = batch(train, mask=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(None, graphs), target)
        loss.backward()
        optimizer.step()
    graphs, target = batch([(["z"], 0)], mask=True)
    assert model(None, graphs).argmax(-1).tolist() == target.tolist()


def test_paths_without_a_label_map_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kg: {files: [x.ttl]}\ndata: {train: t.csv}\nmodel: {graph_encoder: paths}\n")
    with pytest.raises(ConfigError, match=r"kg\.label_map"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"model\.graph_encoder"):
        load_config(config, ["model.graph_encoder=gat"])


def test_fused_paths_model_falls_back_to_text_without_linked_entities(
    graph: kg.KnowledgeGraph,
) -> None:
    labels = ids(graph, "water", "fire")
    model = FusionClassifier(
        ModelConfig(mode="fused", hidden=16, graph_encoder="paths", counts=False),
        None,
        unread_features(graph, 4),
        2 * graph.num_relations,
        2,
        8,
        uses_label_nodes=True,
    )
    model.eval()
    subs = [
        build_path_subgraph(graph, [], labels, 3),
        build_path_subgraph(graph, ids(graph, "a"), labels, 3),
    ]
    text = torch.randn(2, 8)
    parts = model.forward_parts(None, collate_graphs(subs), text_vector=text)
    assert parts["gate"][0].item() == 0.0
    torch.testing.assert_close(parts["logits"][0], parts["text_logits"][0])
    assert np.isfinite(parts["logits"].detach().numpy()).all()
