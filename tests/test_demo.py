"""The embedded demo: its data holds what data/demo/README.md promises, and the demo runs."""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pyoxigraph
import pytest

import kg
from api.demo import REPO
from tests.conftest import run_cli

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


def wait_ready(url: str, process: subprocess.Popen[str], seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {seconds} s")


@pytest.mark.integration
def test_make_demo_trains_compares_explains_reuses_and_serves(tmp_path: Path) -> None:
    """What `make demo` runs (`kgfuse demo`), one epoch a model to keep it short."""
    demo = ["demo", "--output", str(tmp_path / "demo"), "train.epochs=1", "train.threads=1"]
    first = run_cli(*demo, "--no-serve", timeout=1200)  # minutes on a busy 2-core machine
    assert first.returncode == 0, first.stderr
    assert "fused - text" in first.stdout and "unseen acc" in first.stdout
    assert first.stdout.count("   path: ") >= 3 and first.stdout.count("   fused: ") == 3
    runs = tmp_path / "demo"
    for name in ("text", "fused"):
        assert (runs / name / "bundle" / "bundle.json").is_file()
    trained = (runs / "fused" / "metrics.jsonl").read_text()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-c", "from api.cli import main; main()", *demo, "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        text = rows("test_unseen.csv")[0]["text"]
        r = httpx.post(url + "/v1/predict", json={"texts": [text], "explain": True}, timeout=60)
        assert r.status_code == 200 and r.json()["predictions"][0]["entities"]
        assert "<textarea" in httpx.get(url + "/").text
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    assert (runs / "fused" / "metrics.jsonl").read_text() == trained  # reused, not retrained
    assert f"curl -s {url}/v1/predict" in out and "authorization: Bearer" in out

    bundle = runs / "fused" / "bundle"
    example = subprocess.run(
        [sys.executable, str(REPO / "examples" / "predict_with_paths.py"), str(bundle)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert example.returncode == 0, example.stderr
    after = example.stdout.split("after adding")[1]
    assert (
        "linked 'Lantis L9' to Lantis L9" in after
        and "path: Lantis L9 --in product line-->" in after
    )
