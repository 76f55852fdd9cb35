"""Training data: splits from files, a split column or a seeded stratified split; held-out
entities; and the errors a user sees."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from fusion.data import Example, load_splits, stratified_split
from fusion.split import held_out_entity_split
from nlp.texts import DataError

from .conftest import run_cli


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rows(n: int, labels: tuple[str, ...] = ("a", "b")) -> list[dict[str, str]]:
    return [{"text": f"text {i}", "label": labels[i % len(labels)], "id": str(i)} for i in range(n)]


def test_stratified_split_keeps_label_shares_and_is_seeded() -> None:
    examples = [Example(f"t{i}", "a" if i < 80 else "b") for i in range(100)]
    rest, held = stratified_split(examples, 0.2, seed=3)
    assert Counter(e.label for e in held) == {"a": 16, "b": 4}
    assert len(rest) + len(held) == 100 and not set(rest) & set(held)
    assert stratified_split(examples, 0.2, seed=3)[1] == held
    assert stratified_split(examples, 0.2, seed=4)[1] != held


def test_load_splits_from_separate_files(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows(20))
    test = _write(tmp_path / "test.csv", _rows(6))
    splits = load_splits(train=train, tests={"seen": test}, val_fraction=0.2)
    assert splits.counts() == {"train": 16, "val": 4, "test:seen": 6}
    assert splits.labels == ["a", "b"]
    assert splits.train[0].fields == {"id": splits.train[0].fields["id"]}


def test_load_splits_from_a_split_column_and_from_one_file(tmp_path: Path) -> None:
    rows = _rows(30)
    for i, r in enumerate(rows):
        r["part"] = ["train", "train", "val", "test", "train"][i % 5]
    data = _write(tmp_path / "all.csv", rows)
    by_column = load_splits(path=data, split_column="part")
    assert by_column.counts() == {"train": 18, "val": 6, "test:test": 6}
    auto = load_splits(path=data, test_fraction=0.2, val_fraction=0.1)
    assert auto.counts() == {"train": 20, "val": 4, "test:test": 6}  # rounded per label


def test_load_splits_errors_name_the_problem(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows(10))
    odd = _write(tmp_path / "odd.csv", _rows(4, labels=("a", "zebra")))
    with pytest.raises(
        DataError, match=r"odd.csv has label\(s\) \['zebra'\] that the training data never shows"
    ):
        load_splits(train=train, tests={"x": odd})
    with pytest.raises(
        DataError, match=r"no column 'category'; the columns are \['text', 'label', 'id'\]"
    ):
        load_splits(train=train, label_column="category")
    with pytest.raises(DataError, match="not both"):
        load_splits(train=train, path=train)
    bad_split = _write(tmp_path / "s.csv", [{**r, "part": "holdout"} for r in _rows(4)])
    with pytest.raises(DataError, match=r"values \['holdout'\]"):
        load_splits(path=bad_split, split_column="part")


def test_held_out_entity_split_never_shows_a_held_out_entity_in_train() -> None:
    examples = [Example(f"t{i}", "ab"[i % 2]) for i in range(40)]
    mentions = [[f"e{i % 10}", f"e{(i + 3) % 10}"] if i % 4 else [] for i in range(40)]
    split = held_out_entity_split(examples, mentions, fraction=0.3, seed=1, val_fraction=0.1)
    held = set(split.held_out)
    assert len(held) == 3
    seen = {
        iri
        for e, m in zip(examples, mentions, strict=True)
        if e in split.train + split.val
        for iri in m
    }
    assert not seen & held
    assert all(held & set(m) for e, m in zip(examples, mentions, strict=True) if e in split.test)
    assert len(split.train) + len(split.val) + len(split.test) == 40
    again = held_out_entity_split(examples, mentions, fraction=0.3, seed=1, val_fraction=0.1)
    assert again.held_out == split.held_out and again.test == split.test


def test_held_out_entity_split_respects_candidates_and_refuses_nothing_linked() -> None:
    examples = [Example("x", "a"), Example("y", "b"), Example("z", "a")]
    split = held_out_entity_split(
        examples, [["s1", "d1"], ["s2", "d1"], ["d1"]], 0.5, candidates={"s1", "s2"}
    )
    assert set(split.held_out) <= {"s1", "s2"}
    with pytest.raises(DataError, match="no text mentions an entity that may be held out"):
        held_out_entity_split(examples, [[], [], []], 0.5)


@pytest.mark.integration
def test_cli_split_symptom2disease_holds_out_symptoms(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "symptom2disease"
    out = tmp_path / "split"
    result = run_cli(
        "split",
        str(folder / "Symptom2Disease.csv"),
        "--kg",
        str(folder / "kg.ttl"),
        "-o",
        str(out),
        "--type",
        "http://example.org/symptomkb/Symptom",
        "--fraction",
        "0.25",
        "--seed",
        "0",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "split.json").read_text())
    assert summary["held_out"] > 10 and sum(summary["counts"].values()) == 1200
    held = {line.split("\t")[0] for line in (out / "held_out.tsv").read_text().splitlines()[1:]}
    assert all("/symptom_" in iri for iri in held)
    train = {r["text"] for r in csv.DictReader((out / "train.csv").open(encoding="utf-8"))}
    test = {r["text"] for r in csv.DictReader((out / "test.csv").open(encoding="utf-8"))}
    assert train and test and not train & test - {""}


def test_held_out_entity_split_can_set_aside_a_seen_test() -> None:
    examples = [Example(f"t{i}", "ab"[i % 2]) for i in range(60)]
    mentions = [[f"e{i % 6}"] for i in range(60)]
    split = held_out_entity_split(
        examples, mentions, fraction=0.2, seed=0, val_fraction=0.1, seen_fraction=0.2
    )
    held = set(split.held_out)
    assert split.test_seen and not any(
        held & set(mentions[examples.index(e)]) for e in split.test_seen
    )
    parts = [split.train, split.val, split.test, split.test_seen]
    assert sum(map(len, parts)) == 60 and len({e.text for p in parts for e in p}) == 60


def test_label_map_resolves_labels_and_names_what_is_wrong(tmp_path: Path, tiny_kg) -> None:  # type: ignore[no-untyped-def]
    from nlp.texts import read_label_map

    good = tmp_path / "map.tsv"
    good.write_text("label\tentity\nflu\thttp://example.org/tiny/flu\nviral\tCOVID-19\n")
    assert read_label_map(good, tiny_kg, ["viral", "flu"]) == [
        tiny_kg.entity_id("http://example.org/tiny/covid"),
        tiny_kg.entity_id("http://example.org/tiny/flu"),
    ]
    with pytest.raises(DataError, match=r"maps no entity for label\(s\) \['cold'\]"):
        read_label_map(good, tiny_kg, ["flu", "cold"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("flu\thttp://example.org/tiny/flu\nviral\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected 2 tab-separated columns"):
        read_label_map(bad, tiny_kg, ["flu"])
    with pytest.raises(DataError, match="not found"):
        read_label_map(tmp_path / "none.tsv", tiny_kg, ["flu"])
