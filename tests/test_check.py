"""`kgfuse check CONFIG`: the set-up of a training run, reported, with nothing trained or written.

The species data set (tests/conftest.py) is pokedex in small: a species' type is known through
a relative's type fact, and training hides each text's own facts (they restate its label)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion.check import check
from fusion.config import load_config
from tests.conftest import run_cli_in_process, species_overrides


def test_check_reports_links_label_paths_and_the_verdict_and_writes_nothing(
    species_data: dict[str, Path],
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  mode: fused\n", encoding="utf-8")
    report_file = tmp_path / "check.json"
    overrides = species_overrides(species_data, tiny_bert, out)
    code = run_cli_in_process(
        monkeypatch, "check", str(config), *overrides, "--json", str(report_file)
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert not out.exists()  # a check trains nothing and writes no run folder
    for words in ("KG: ", "subgraph.hops", "val:unseen", "test:unseen", "nothing was written"):
        assert words in printed, (words, printed)
    assert "the KG's label paths help the reference" in printed or "add nothing" in printed

    report = json.loads(report_file.read_text())
    rows = {row["name"]: row for row in report["splits"]}
    train, unseen, test = rows["train"], rows["val:unseen"], rows["test:unseen"]
    assert train["linked"] == train["texts"]  # every text names its species
    assert 0 < unseen["paths_pick_label"] <= unseen["reachable"] <= unseen["texts"]
    assert test["reachable"] is None and test["paths_pick_label"] is None  # no test label read
    assert report["classes_in_kg"] == report["classes"] == 3
    reference = report["reference"]
    assert "0" in reference["accuracy_by_hops"] and isinstance(reference["kg_helps"], bool)


def test_check_hides_label_facts_as_training_does(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    """A training text's own type fact restates its label, and training hides it: within one
    hop nothing else reaches a class, so no training text has a label path; within two, a
    relative's fact does. Counting the hidden facts would show 100% at one hop."""

    def run(hops: int) -> tuple[int, int, dict[str, object]]:
        overrides = species_overrides(
            species_data, tiny_bert, tmp_path / "x", f"subgraph.hops={hops}"
        )
        report = check(load_config(None, overrides))
        row = next(r for r in report.splits if r.name == "train")
        assert row.reachable is not None
        return row.reachable, row.texts, report.reference

    reachable, _, one_hop = run(1)
    assert reachable == 0
    # the verdict is the reference's at the hops the run uses, not at its best hops
    assert one_hop["hops"] == 1 and one_hop["kg_helps"] is False and one_hop["best_hops"] != 1
    reachable, texts, two_hops = run(2)
    assert reachable > texts / 2
    assert two_hops["hops"] == 2 and two_hops["kg_helps"] is True


def test_check_names_what_the_reference_was_measured_on_and_why_it_is_missing(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    """A random validation split has no val:unseen texts: the reference is measured on all of
    validation, and the report says so. A text model with its hops set needs no reference:
    the report says why there is none, instead of blaming the label map."""
    out = tmp_path / "x"
    random_split = species_overrides(species_data, tiny_bert, out, "data.val_split=random")
    reference = check(load_config(None, random_split)).reference
    assert reference["texts_kind"] == "validation"

    text_only = species_overrides(
        species_data, tiny_bert, out, "model.mode=text", "subgraph.hops=2"
    )
    report = check(load_config(None, text_only))
    assert report.reference == {} and not report.reads_kg
    assert report.missing.startswith("subgraph.hops is set and nothing else asks for the reference")
    train = next(r for r in report.splits if r.name == "train")
    assert train.reachable is not None  # the label paths are counted all the same


def test_check_of_a_bad_config_fails_like_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  epochs: abc\n", encoding="utf-8")
    code = run_cli_in_process(monkeypatch, "check", str(config))
    err = capsys.readouterr().err
    assert code == 1 and "train.epochs" in err and "Traceback" not in err
