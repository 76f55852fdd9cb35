"""The seed's training options: mention swap and FGM adversarial steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import kg
from fusion.augment import swap_mentions
from fusion.config import ConfigError, load_config
from fusion.encoder import EncoderConfig, TextEncoder
from fusion.optimization import FGM
from fusion.resources import Prepared

EX = "http://example.org/swap/"
TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
# species s1..s4 have one primary type each; h has two (its class is not a function of it);
# the moves m (no label fact) and m2 (water) are of another rdf:type.
TRIPLES = """
s1 has_type water
s2 has_type fire
s3 has_type fire
s4 has_type water
h has_type water
h has_type fire
m2 has_type water
m learned_by s1
s1 a Species
s2 a Species
s3 a Species
s4 a Species
h a Species
m a Move
m2 a Move
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    rows = TRIPLES.replace(" a ", f" {TYPE} ")
    folder = tmp_path_factory.mktemp("swap")
    triples = [line.split() for line in rows.strip().splitlines()]
    path = folder / "rows.nt"
    path.write_text(
        "".join(
            f"<{s if s.startswith('http') else EX + s}> <{p if p.startswith('http') else EX + p}> "
            f"<{o if o.startswith('http') else EX + o}> .\n"
            for s, p, o in triples
        )
        + "".join(
            f'<{EX}{n}> <http://www.w3.org/2000/01/rdf-schema#label> "{n.upper()}" .\n'
            for n in ("s1", "s2", "s3", "s4", "h", "m", "m2")
        )
    )
    return kg.load(path)


class FakeResources:
    """What swap_mentions reads: the graph and label nodes; `prepare` records its call."""

    def __init__(self, graph: kg.KnowledgeGraph):
        self.graph = graph
        self.label_nodes = [graph.entity_id(EX + "water"), graph.entity_id(EX + "fire")]
        self.calls: list[dict[str, Any]] = []

    def prepare(self, texts: list[str], labels: list[int], **kwargs: Any) -> list[Prepared]:
        self.calls.append({"texts": texts, "labels": labels, **kwargs})
        return [Prepared(t, y, []) for t, y in zip(texts, labels, strict=True)]


def example(graph: kg.KnowledgeGraph, text: str, label: int, *names: str) -> Prepared:
    spans = []
    for n in names:
        for found in re.finditer(rf"\b{n.upper()}\b", text):
            spans.append(
                {"text": n.upper(), "start": found.start(), "end": found.end(), "iri": EX + n}
            )
    spans.sort(key=lambda s: s["start"])
    return Prepared(text, label, [graph.entity_id(EX + n) for n in names], spans)


def test_a_text_is_copied_about_another_entity_of_its_type_with_that_entitys_class(
    graph: kg.KnowledgeGraph,
) -> None:
    resources = FakeResources(graph)
    train = [
        example(graph, "S1 swims; S1 likes M.", 0, "s1", "m"),  # m is not a species
        example(graph, "S2 burns.", 1, "s2"),
        example(graph, "S3 burns too.", 1, "s3"),
        example(graph, "M2 is a move.", 0, "m2"),  # no other move to swap in
    ]
    swap_mentions(resources, train, rate=1.0, seed=0)  # type: ignore[arg-type]
    (call,) = resources.calls
    assert call["mask_label_facts"] == [True] * len(call["texts"])
    first = call["texts"][0]
    assert first in ("S2 swims; S2 likes M.", "S3 swims; S3 likes M.")
    assert call["labels"][0] == 1  # the replacement's class, not the text's
    spans = call["spans"][0]
    assert [first[s["start"] : s["end"]] for s in spans] == [
        spans[0]["text"],
        spans[1]["text"],
        "M",
    ]
    assert spans[0]["iri"] == spans[1]["iri"] != EX + "s1" and spans[2]["iri"] == EX + "m"
    # s2's and s3's copies name another species that training mentions (s4 never is drawn),
    # never a move; m2 has no other move to become
    assert len(call["texts"]) == 3
    for text, label in zip(call["texts"][1:], call["labels"][1:], strict=True):
        name = text.split()[0]
        assert name in ("S1", "S2", "S3") and label == (0 if name == "S1" else 1)


def test_texts_whose_class_is_not_a_function_of_an_entity_are_left_out(
    graph: kg.KnowledgeGraph,
) -> None:
    resources = FakeResources(graph)
    train = [
        example(graph, "H is both.", 0, "h"),  # two label facts
        example(graph, "S1 and S2 meet.", 0, "s1", "s2"),  # two holders
        example(graph, "S1 again.", 1, "s1"),  # its fact names another class than its label
        example(graph, "S2 burns.", 1, "s2"),
    ]
    hidden = {graph.entity_id(EX + "s1")}  # validation's held-out entity: never drawn
    out = swap_mentions(resources, train, rate=1.0, seed=0, hidden=hidden)  # type: ignore[arg-type]
    assert [p.text for p in out] == ["S3 burns."] or out == []
    assert all("S1" not in t for c in resources.calls for t in c["texts"])


def test_swap_and_adversarial_settings_are_checked(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    with pytest.raises(
        ConfigError,
        match=r"(?s)train\.swap_mentions: must be a number in \[0, 1\]"
        r".*train\.adversarial: must be a number of 0 or more",
    ):
        load_config(config, ["train.swap_mentions=1.5", "train.adversarial=-1"])


def test_fgm_moves_each_texts_word_embeddings_by_epsilon_and_clears(tiny_bert: Path) -> None:
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), max_length=16))
    encoder.train()
    for module in encoder.modules():  # outputs then differ only by the perturbation
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    fgm = FGM(encoder, epsilon=0.5)
    tokens = encoder.tokenize(["a cough and fever", "sneezing"])
    clean = encoder(tokens["input_ids"], tokens["attention_mask"])
    assert not fgm.perturb()  # no backward pass yet
    clean.pow(2).sum().backward()
    assert fgm.perturb()
    assert fgm.delta is not None
    norms = fgm.delta.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((2,), 0.5))
    attacked = encoder(tokens["input_ids"], tokens["attention_mask"])
    assert not torch.allclose(attacked, clean)
    fgm.clear()
    again = encoder(tokens["input_ids"], tokens["attention_mask"])
    torch.testing.assert_close(again, clean)
    fgm.close()
