"""The fused classifier: shapes, the shared code path of the modes, the gate, and learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kg
from fusion.encoder import EncoderConfig, TextEncoder
from fusion.examples import SubgraphSettings, build_subgraph, collate_graphs
from fusion.model import FusionClassifier, ModelConfig
from tests.conftest import hashed_features

EX = "http://example.org/tiny/"
LABELS = ["fever", "sneezing"]  # classes whose label nodes are these symptoms


@pytest.fixture(scope="module")
def graph(tiny_ttl: Path) -> kg.KnowledgeGraph:
    return kg.load(tiny_ttl)


def make_model(mode: str, graph: kg.KnowledgeGraph, tiny_bert: Path) -> FusionClassifier:
    torch.manual_seed(0)
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), max_length=32))
    features = hashed_features(graph, 16)
    model = FusionClassifier(
        ModelConfig(mode=mode, hidden=16, dropout=0.0),
        encoder,
        features,
        2 * graph.num_relations,
        len(LABELS),
        encoder.hidden_size,
        uses_label_nodes=True,
    )
    return model


@pytest.fixture(scope="module")
def tokenizer(tiny_bert: Path) -> TextEncoder:
    """Tokenizes for every mode (the graph-only model has no text encoder of its own)."""
    return TextEncoder(EncoderConfig(path=str(tiny_bert), max_length=32), adapt=False)


def make_batch(graph: kg.KnowledgeGraph, tokenizer: TextEncoder, texts: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    label_nodes = [graph.entity_id(EX + n) for n in LABELS]
    subgraphs = [
        build_subgraph(
            graph, [graph.entity_id(EX + e) for e in linked], label_nodes, SubgraphSettings(2, 16)
        )
        for linked in texts.values()
    ]
    return tokenizer.tokenize(list(texts)), collate_graphs(subgraphs)


@pytest.mark.parametrize("mode", ["text", "graph", "fused"])
def test_model_modes_give_logits_for_every_text(
    graph: kg.KnowledgeGraph, tiny_bert: Path, tokenizer: TextEncoder, mode: str
) -> None:
    model = make_model(mode, graph, tiny_bert)
    tokens, batch = make_batch(
        graph, tokenizer, {"flu with a cough": ["flu"], "nothing linked": []}
    )
    assert model(tokens, batch).shape == (2, 2)


def test_model_modes_share_one_code_path(
    graph: kg.KnowledgeGraph, tiny_bert: Path, tokenizer: TextEncoder
) -> None:
    text, fused = make_model("text", graph, tiny_bert), make_model("fused", graph, tiny_bert)
    # same seed, same text part: the text-only logits of fused are the text model's logits
    fused.eval(), text.eval()
    tokens, batch = make_batch(graph, tokenizer, {"flu with a cough": ["flu"]})
    parts = fused.forward_parts(tokens, batch)
    assert torch.allclose(parts["text_logits"], text(tokens, batch), atol=1e-6)
    assert set(dict(text.named_parameters())) < set(dict(fused.named_parameters()))


def test_model_gate_falls_back_to_text_when_nothing_is_linked(
    graph: kg.KnowledgeGraph, tiny_bert: Path, tokenizer: TextEncoder
) -> None:
    model = make_model("fused", graph, tiny_bert).eval()
    tokens, batch = make_batch(
        graph, tokenizer, {"flu with a cough": ["flu"], "nothing linked here": []}
    )
    parts = model.forward_parts(tokens, batch)
    assert parts["gate"][1] == 0.0 and parts["gate"][0] > 0.0
    assert torch.equal(parts["logits"][1], parts["text_logits"][1])
    assert not torch.equal(parts["logits"][0], parts["text_logits"][0])


@pytest.mark.parametrize("mode", ["text", "graph", "fused"])
def test_model_two_training_steps_lower_the_loss(
    graph: kg.KnowledgeGraph, tiny_bert: Path, tokenizer: TextEncoder, mode: str
) -> None:
    model = make_model(mode, graph, tiny_bert)
    tokens, batch = make_batch(
        graph, tokenizer, {"flu": ["flu"], "hay fever": ["hay_fever"], "cold": ["cold"]}
    )
    target = torch.tensor([0, 1, 1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(tokens, batch), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[2] < losses[0]


def test_subgraph_nodes_know_their_distance_to_the_linked_entities(
    graph: kg.KnowledgeGraph,
) -> None:
    flu, sneezing = graph.entity_id(EX + "flu"), graph.entity_id(EX + "sneezing")
    sub = build_subgraph(graph, [flu], [sneezing], SubgraphSettings(2, 10))
    distance = dict(zip(sub.n_id.tolist(), sub.distance.tolist(), strict=True))
    assert distance[flu] == 0
    assert distance[graph.entity_id(EX + "cough")] == 1
    assert distance[graph.entity_id(EX + "cold")] == 2  # flu - cough - cold
    assert distance[sneezing] == 3  # ... - cold - sneezing
    alone = build_subgraph(graph, [], [sneezing], SubgraphSettings(2, 10))
    assert set(alone.distance.tolist()) == {4}  # nothing linked: every node is "unreachable"


def test_label_facts_of_the_linked_entities_are_masked(graph: kg.KnowledgeGraph) -> None:
    flu, fever = graph.entity_id(EX + "flu"), graph.entity_id(EX + "fever")
    shown = build_subgraph(graph, [flu], [fever], SubgraphSettings(2, 10))
    masked = build_subgraph(graph, [flu], [fever], SubgraphSettings(2, 10), masked={flu})

    def joins(sub, a: int, b: int) -> bool:  # type: ignore[no-untyped-def]
        pos = {e: i for i, e in enumerate(sub.n_id.tolist())}
        pairs = set(zip(sub.edge_index[0].tolist(), sub.edge_index[1].tolist(), strict=True))
        return (pos[a], pos[b]) in pairs

    assert joins(shown, flu, fever) and not joins(masked, flu, fever)
    covid = graph.entity_id(EX + "covid")
    assert joins(masked, covid, fever)  # other entities' label facts stay
