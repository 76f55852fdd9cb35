"""The embedded demo: its data holds what data/demo/README.md promises, and the demo runs."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pyoxigraph
import pytest
from fastapi.testclient import TestClient

import kg
from api.demo import REPO, run_demo

DEMO = REPO / "data" / "demo"
SHOP = "http://example.org/shopkg/"


def rows(name: str) -> list[dict[str, str]]:
    with (DEMO / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def graph() -> kg.KnowledgeGraph:
    return kg.load(DEMO / "kg.ttl")


def test_demo_kg_has_600_triples_with_labels_aliases_and_descriptions(
    graph: kg.KnowledgeGraph,
) -> None:
    triples = list(pyoxigraph.parse(path=str(DEMO / "kg.ttl"), format=pyoxigraph.RdfFormat.TURTLE))
    assert len(triples) >= 600
    predicates = Counter(t.predicate.value for t in triples)
    assert predicates["http://www.w3.org/2000/01/rdf-schema#label"] >= 250
    assert predicates["http://www.w3.org/2004/02/skos/core#altLabel"] >= 50
    assert predicates["http://www.w3.org/2000/01/rdf-schema#comment"] >= 250
    models = [e for e in range(graph.num_entities) if graph.iri(e).startswith(SHOP + "model/")]
    assert len(models) >= 40 and all(graph.label(m) for m in models)


def test_demo_texts_counts_classes_and_label_map(graph: kg.KnowledgeGraph) -> None:
    splits = {name: rows(f"{name}.csv") for name in ("train", "test_seen", "test_unseen")}
    everything = [r for split in splits.values() for r in split]
    assert len(everything) >= 500
    assert len({r["text"] for r in everything}) == len(everything)  # no repeated message
    labels = {r["label"] for r in everything}
    assert len(labels) >= 8 and {r["label"] for r in splits["train"]} == labels
    with (DEMO / "label_map.tsv").open(encoding="utf-8") as f:
        label_map = dict(line.rstrip("\n").split("\t") for line in list(f)[1:])
    assert set(label_map) == labels
    for entity in label_map.values():
        assert graph.has_entity(entity)
    for r in everything:
        assert graph.has_entity(r["model"]), r


def test_demo_unseen_models_never_appear_in_training(graph: kg.KnowledgeGraph) -> None:
    train, seen, unseen = rows("train.csv"), rows("test_seen.csv"), rows("test_unseen.csv")
    train_models = {r["model"] for r in train}
    unseen_models = {r["model"] for r in unseen}
    assert not unseen_models & train_models
    assert {r["model"] for r in seen} <= train_models
    all_models = train_models | unseen_models
    assert len(unseen_models) / len(all_models) >= 0.25
    # no training message names an unseen model by any of its names either
    names = {n.casefold() for m in unseen_models for n in graph.names(graph.entity_id(m))}
    for r in train:
        words = r["text"].casefold()
        assert not [n for n in names if f" {n} " in f" {words} "], r["text"]


@pytest.mark.integration
def test_demo_trains_both_models_compares_explains_and_reuses_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quick = ["train.epochs=1", "train.threads=1"]
    results = run_demo(tmp_path / "demo", serve=False, overrides=quick)
    out = capsys.readouterr().out
    assert set(results) == {"text", "fused"}
    for name in ("text", "fused"):
        assert (results[name].bundle / "bundle.json").is_file()
        assert set(results[name].metrics) == {"val", "test:seen", "test:unseen"}
    assert "fused - text" in out and "unseen acc" in out
    assert out.count("   path: ") >= 3 and out.count("   fused: ") == 3
    epochs_file = results["fused"].run_dir / "metrics.jsonl"
    trained = epochs_file.read_text()
    again = run_demo(tmp_path / "demo", serve=False, overrides=quick)  # reused, not retrained
    assert epochs_file.read_text() == trained
    assert again["fused"].metrics == results["fused"].metrics

    bundle = Path(shutil.copytree(results["fused"].bundle, tmp_path / "served"))
    from api.app import create_app
    from api.settings import ServeSettings

    text = rows("test_unseen.csv")[0]["text"]
    with TestClient(create_app(ServeSettings(bundle=bundle))) as client:
        r = client.post("/v1/predict", json={"texts": [text], "explain": True})
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert p["entities"] and p["label"] in {row["label"] for row in rows("train.csv")}
