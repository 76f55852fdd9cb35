"""Typed predictions: `Predictor.predict` returns `Prediction`s, and `kgfuse predict --json`
prints the same records, one per text, that `-o` writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.predict import Predictor
from fusion.prediction import Prediction
from kg.described_path import DescribedPath

from .conftest import run_cli

EX = "http://example.org/tiny/"
TEXTS = ["a bad case of influenza", "covid-19 and a cough"]


def test_predict_returns_typed_predictions_with_paths_in_iris_and_labels(
    tiny_bundle: Path,
) -> None:
    predictor = Predictor.from_dir(tiny_bundle)
    flu, covid = predictor.predict(TEXTS, explain_paths=True, top_k_paths=2)
    assert isinstance(flu, Prediction) and flu.label in predictor.labels
    assert sum(flu.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    (entity,) = flu.entities
    assert (entity.iri, entity.label, entity.text) == (EX + "flu", "Influenza", "influenza")
    assert {e.iri for e in covid.entities} == {EX + "covid", EX + "cough"}
    assert flu.paths and all(isinstance(p, DescribedPath) for p in flu.paths)
    assert flu.paths[0].hops[0].subject.iri.startswith(EX)
    assert set(flu.timings_ms) == {"link_ms", "model_ms", "explain_ms"}
    (plain,) = predictor.predict(TEXTS[:1])
    assert plain.paths is None and plain.label == flu.label


def test_cli_predict_json_prints_the_records_that_o_writes(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    bundle = str(tiny_bundle)
    printed = run_cli("predict", bundle, *TEXTS, "--paths", "--json", columns=40)
    assert printed.returncode == 0, printed.stderr
    records = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [r["text"] for r in records] == TEXTS
    shape = {"text", "label", "probabilities", "entities", "graph_weight", "paths"}
    assert all(set(r) == shape for r in records)  # the JSONL records of before, as scripts read
    assert records[0]["entities"][0]["iri"] == EX + "flu"
    hops = [h for r in records for p in r["paths"] for h in p["hops"]]
    assert hops and all(h["subject"]["iri"].startswith(EX) for h in hops)
    assert all("timings_ms" not in r for r in records)  # they differ between runs
    out = tmp_path / "out.jsonl"
    written = run_cli("predict", bundle, *TEXTS, "--paths", "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_text(encoding="utf-8") == printed.stdout
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    streamed = run_cli("predict", bundle, "-i", str(texts), "--paths", "--json", columns=40)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == printed.stdout


def test_cli_predict_json_and_output_together_are_refused(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", str(tiny_bundle), "a cough", "--json", "-o", str(out))
    assert result.returncode == 1 and "pass one" in result.stderr and not out.exists()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("policy", "tokens", "inside"),
    [("PASSIVE", 22, 1), ("PASSIVE", 128, 1), ("PASSIVE", 129, 2), ("", 22, 2), ("ACTIVE", 22, 2)],
)
def test_small_model_calls_run_on_one_thread_only_when_threads_sleep(
    monkeypatch: pytest.MonkeyPatch, policy: str, tokens: int, inside: int
) -> None:
    import torch

    from fusion.predict import threads_for

    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads_for(tokens):
            assert torch.get_num_threads() == inside
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), threads_for(tokens):  # restored on an error too
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_python_api_misuse_gets_a_data_error_naming_the_fix(tiny_bundle: Path) -> None:
    from nlp.texts import DataError

    predictor = Predictor.from_dir(tiny_bundle)
    assert predictor.predict([]) == []
    cases = [
        ("influenza with fever", "texts must be a list of strings, not one str: pass [text]"),
        (["influenza", None], "text 2 is NoneType, not a string"),
        ([b"influenza"], "text 1 is bytes, not a string"),
    ]
    for texts, message in cases:
        with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
            predictor.predict(texts)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"top_k_paths must be at least 1 \(got 0\)"):
        predictor.predict(["influenza"], explain_paths=True, top_k_paths=0)
    with pytest.raises(DataError, match="top_k_paths must be an int, not str '2'"):
        predictor.predict(["influenza"], explain_paths=True, top_k_paths="2")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="explain_paths must be True or False"):
        predictor.predict(["influenza"], explain_paths="no")  # type: ignore[arg-type]
    # numpy's strings, ints and bools are what they stand for
    (found,) = predictor.predict(
        np.array(["influenza with fever"]), explain_paths=np.True_, top_k_paths=np.int64(2)
    )
    assert found.text == "influenza with fever" and found.paths is not None
