"""`kgfuse anonymize DATA -o OUT`: every column and row kept, the texts redacted, KG names that
look like person names kept with --config, and bad input refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fusion.anonymize_data import anonymize_texts, config_linker
from nlp.anonymize import Anonymizer
from tests.conftest import REPO, run_cli, run_cli_in_process

KG = """@prefix ex: <http://example.org/med/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:mas rdfs:label "Marie Antoinette syndrome" ; ex:hasSymptom ex:white_hair .
ex:white_hair rdfs:label "white hair" .
ex:flu rdfs:label "influenza" ; ex:hasSymptom ex:fever .
ex:fever rdfs:label "fever" .
"""
ROWS = [
    ("1", "Marie Antoinette syndrome: white hair overnight, says Maria Gonzalez", "mas"),
    ("2", "influenza and fever; call +44 20 7946 0958 or mail jo@example.com", "flu"),
    ("3", "white hair, card 4111 1111 1111 1112 (refused)", "mas"),
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "kg.ttl").write_text(KG)
    path = tmp_path / "run.yaml"
    path.write_text(
        (REPO / "configs" / "tiny.yaml")
        .read_text()
        .replace("tests/fixtures/tiny.ttl", str(tmp_path / "kg.ttl"))
    )
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        writer.writerows(ROWS)
    return path


def test_anonymize_cli_keeps_columns_rows_and_kg_names(
    data: Path,
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.csv"
    assert (
        run_cli_in_process(
            monkeypatch, "anonymize", str(data), "-o", str(out), "--config", str(config)
        )
        == 0
    )
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "text", "label"]
    assert [(r[0], r[2]) for r in rows[1:]] == [(i, label) for i, _, label in ROWS]
    assert [r[1] for r in rows[1:]] == [
        "Marie Antoinette syndrome: white hair overnight, says [PERSON]",
        "influenza and fever; call [PHONE] or mail [EMAIL]",
        "white hair, card 4111 1111 1111 1112 (refused)",
    ]
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 texts, 2 with personal data; 3 redactions" in printed
    assert "linked KG entities unchanged in 3 of 3 texts" in printed


def test_anonymize_without_a_linker_redacts_kg_names_that_look_like_people(
    config: Path,
) -> None:
    texts = [text for _, text, _ in ROWS]
    plain, summary = anonymize_texts(texts, Anonymizer())
    assert plain[0].startswith("[PERSON] syndrome") and summary.same_entities is None
    kept, summary = anonymize_texts(texts, Anonymizer(), config_linker(config))
    assert kept[0].startswith("Marie Antoinette syndrome") and summary.same_entities == 3


def test_anonymize_cli_writes_jsonl_by_the_output_suffix(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    assert run_cli_in_process(monkeypatch, "anonymize", str(data), "-o", str(out)) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert records[1]["text"] == "influenza and fever; call [PHONE] or mail [EMAIL]"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", [], "missing.csv: file not found"),
        ("no-text", [], "no column 'text'"),
        ("data", ["--text-column", "body"], "no column 'body'"),
        ("data", ["--phone-region", "XX"], "--phone-region XX: not a region"),
        ("data", ["--bundle", "b", "--config", "c"], "give --bundle or --config"),
        ("data", ["--bundle", "nowhere"], "nowhere"),
        ("data", ["-o", "out.xlsx"], "cannot write .xlsx files"),
    ],
)
def test_anonymize_cli_bad_input_is_one_line_and_writes_nothing(
    data: Path,
    tmp_path: Path,
    setup: str,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = {"none": tmp_path / "missing.csv", "no-text": tmp_path / "bad.csv", "data": data}[
        setup
    ]
    (tmp_path / "bad.csv").write_text("id,body\n1,hello\n")
    out = ["-o", str(tmp_path / "out.csv")] if "-o" not in args else []
    args = [a if a != "out.xlsx" else str(tmp_path / a) for a in args]
    code = run_cli_in_process(monkeypatch, "anonymize", str(source), *out, *args)
    err = capsys.readouterr().err
    assert code == 1 and message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.xlsx").exists()


def test_anonymize_cli_in_a_subprocess_exits_1_without_traceback(tmp_path: Path) -> None:
    result = run_cli("anonymize", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv"))
    assert result.returncode == 1 and "file not found" in result.stderr
    assert "Traceback" not in result.stderr
