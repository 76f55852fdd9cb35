"""Explanations as sets (fusion/explain.py): the top-k paths are chosen by what removing them
together costs the prediction, they are real KG paths to the predicted class, and none repeats
another's triples."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fusion.bundle import load_bundle
from fusion.examples import LinkedSubgraph
from fusion.explain import _drop, explain
from fusion.resources import Prepared
from kg.graph import Triple

from .conftest import species_overrides

# A toy subgraph with entity ids = node positions: linked A, B, D; class C (label node 0).
A, B, D, C, OTHER = 0, 1, 2, 3, 4
WEIGHTS = {Triple(A, 0, C): 3.0, Triple(B, 0, C): 2.0, Triple(D, 1, A): 0.01}


class _AdditiveModel:
    """Stands in for a FusionClassifier: the log-odds of class 0 are the summed weights of the
    toy triples present in each graph (class 1's logit is 0), so every drop is known."""

    config = SimpleNamespace(mode="fused", reads_walks=False)
    reads_counts = False

    def forward_parts(
        self, tokens: Any, batch: Any, text_vector: torch.Tensor, counts: Any = None
    ) -> dict[str, torch.Tensor]:
        logits = torch.zeros(batch.num_graphs, 2)
        graph_of = batch.batch[batch.edge_index[0]]
        for e in range(batch.edge_index.shape[1]):
            s, o = batch.n_id[batch.edge_index[:, e]].tolist()
            weight = WEIGHTS.get(Triple(s, int(batch.edge_type[e]), o), 0.0)
            logits[graph_of[e], 0] += weight
        return {"logits": logits}


def _toy() -> tuple[_AdditiveModel, Any, Prepared]:
    triples = list(WEIGHTS)
    edge_index = torch.tensor([[t.subject for t in triples], [t.object for t in triples]])
    graph = LinkedSubgraph(
        n_id=torch.arange(5),
        edge_index=edge_index,
        edge_type=torch.tensor([t.relation for t in triples]),
        num_nodes=5,
    )
    resources = SimpleNamespace(
        graph=SimpleNamespace(num_relations=2), label_nodes=[C, OTHER], counter=None
    )
    return _AdditiveModel(), resources, Prepared("toy", 0, [A, B, D], graph=graph)


def _joint_drop(args: tuple, paths: list, temperature: float = 1.0) -> float:
    """The log-odds drop when every path's triples are removed together; ``args``: model,
    resources, example, text vector, predicted class."""
    triples = list(dict.fromkeys(t for p in paths for t in p.triples))
    model, resources, example, text, predicted = args
    return _drop(model, resources, example, text, predicted, triples, False, temperature)


def test_the_set_covers_other_evidence_where_the_best_paths_alone_share_their_edge() -> None:
    model, resources, example = _toy()
    text = torch.zeros(1, 4)
    ranked = explain(model, resources, example, text, 0, top_k=10)  # type: ignore[arg-type]
    # alone, the two best paths both cut A -> C: D -> A -> C (3.01) and A -> C (3.0)
    assert [p.entities for p in ranked] == [(D, A, C), (A, C), (B, C)]
    assert [round(p.score, 2) for p in ranked] == [3.01, 3.0, 2.0]
    chosen = explain(model, resources, example, text, 0, top_k=2)  # type: ignore[arg-type]
    assert [p.entities for p in chosen] == [(D, A, C), (B, C)]
    assert _joint_drop((model, resources, example, text, 0), chosen) == pytest.approx(5.01)
    assert _joint_drop((model, resources, example, text, 0), ranked[:2]) == pytest.approx(3.01)


@pytest.fixture(scope="module")
def explained(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Each text about an unseen species (only relatives' facts answer: several paths each)
    with its prediction, its 2 paths (the set) and every candidate ranked alone, from a
    bundle trained on the species data."""
    from fusion.train import main

    out = tmp_path_factory.mktemp("explain-sets") / "run"
    bundle = main(None, species_overrides(species_data, tiny_bert, out), progress=False).bundle
    model, resources, meta = load_bundle(bundle)
    temperature = float(meta.get("temperature", 1.0))
    with open(species_data["unseen"], newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    cases = []
    for example in resources.prepare(texts):
        if not example.linked:
            continue
        tokens, graph, counts = resources.inputs(model, [example])
        with torch.no_grad():
            text = model.text_vector(tokens, 1)
            logits = model.forward_parts(tokens, graph, text_vector=text, counts=counts)
        predicted = int(logits["logits"].argmax())
        args = (model, resources, example, text, predicted)
        chosen = explain(*args, top_k=2, temperature=temperature)
        ranked = explain(*args, top_k=1000, temperature=temperature)
        cases.append(dict(args=args, temperature=temperature, chosen=chosen, ranked=ranked))
    assert cases, "no species text is linked: the fixture data changed"
    return cases


def test_paths_are_kg_triples_from_a_linked_entity_to_the_predicted_class(
    explained: list[dict[str, Any]],
) -> None:
    checked = 0
    for case in explained:
        _, resources, example, _, predicted = case["args"]
        for path in case["chosen"]:
            assert path.entities[0] in example.linked
            assert path.entities[-1] == resources.label_nodes[predicted]
            assert len(set(path.entities)) == len(path.entities)  # a simple path
            for (here, there), t in zip(
                zip(path.entities, path.entities[1:], strict=False), path.triples, strict=True
            ):
                assert resources.graph.has_triple(t.subject, t.relation, t.object)
                assert {t.subject, t.object} == {here, there}
            checked += 1
    assert checked > 0


def test_no_two_paths_have_the_same_triples(explained: list[dict[str, Any]]) -> None:
    for case in explained:
        for paths in (case["chosen"], case["ranked"]):
            sets = [frozenset(p.triples) for p in paths]
            assert len(sets) == len(set(sets))


def test_the_set_drops_the_log_odds_at_least_as_much_as_the_best_paths_alone(
    explained: list[dict[str, Any]],
) -> None:
    compared = 0
    for case in explained:
        chosen, ranked = case["chosen"], case["ranked"]
        assert chosen[:1] == ranked[:1]  # the best path alone comes first
        if len(ranked) <= len(chosen):
            assert chosen == ranked  # nothing to choose from
            continue
        alone = ranked[: len(chosen)]
        args, temperature = case["args"], case["temperature"]
        assert (
            _joint_drop(args, chosen, temperature) >= _joint_drop(args, alone, temperature) - 1e-4
        )
        compared += 1
    assert compared > 0, "no species text has more candidates than top_k: the check is empty"
