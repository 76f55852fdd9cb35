"""The `kgfuse kg` commands: exit codes, readable errors, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import kg

from .conftest import run_cli


def test_cli_load_compiles_a_folder_that_opens(tiny_ttl: Path, tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    result = run_cli("kg", "load", str(tiny_ttl), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "triples" in result.stdout and "11" in result.stdout
    assert kg.open(out).fingerprint == kg.load(tiny_ttl).fingerprint


def test_cli_load_bad_file_exits_1_with_one_line_and_writes_nothing(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.nt"
    bad.write_text("<http://a> <http://b> <http://c> .\n<http://a> <http://b> oops .\n")
    out = tmp_path / "compiled"
    result = run_cli("kg", "load", str(tiny_ttl), str(bad), "-o", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}:2: syntax error")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nt"]


def test_cli_stats_search_path_and_neighbors(tiny_ttl: Path, tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    assert run_cli("kg", "load", str(tiny_ttl), "-o", str(out)).returncode == 0
    stats = run_cli("kg", "stats", str(out))
    assert stats.returncode == 0 and "entities" in stats.stdout
    search = run_cli("kg", "search", "influensa", "--kg", str(out))
    assert search.returncode == 0 and "http://example.org/tiny/flu" in search.stdout
    path = run_cli("kg", "path", "flu", "SARS-CoV-2", "--kg", str(out), "-k", "1")
    assert path.returncode == 0
    assert (
        "Influenza --has symptom--> fever <--has symptom-- COVID-19 --caused by--> SARS-CoV-2"
        in path.stdout
    )
    nbrs = run_cli("kg", "neighbors", "cough", "--kg", str(tiny_ttl))  # a triples file works too
    assert nbrs.returncode == 0 and "Common cold" in nbrs.stdout


def test_cli_query_errors_exit_non_zero_without_traceback(tiny_ttl: Path, tmp_path: Path) -> None:
    ambiguous = run_cli("kg", "path", "cold", "fever", "--kg", str(tiny_ttl))
    assert ambiguous.returncode == 1 and "names 2 entities" in ambiguous.stderr
    no_path = run_cli("kg", "path", "flu", "Anosmia", "--kg", str(tiny_ttl))
    assert no_path.returncode == 1 and "no path" in no_path.stdout
    missing = run_cli("kg", "stats", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "file not found" in missing.stderr
    usage = run_cli("kg", "load", str(tiny_ttl))  # no -o
    assert usage.returncode == 2
    for r in (ambiguous, no_path, missing, usage):
        assert "Traceback" not in r.stderr


LINKER_KG = Path(__file__).parent / "fixtures" / "linker.ttl"


def test_cli_link_one_text_prints_a_table() -> None:
    result = run_cli("link", "--kg", str(LINKER_KG), "Influenza with a runny nose")
    assert result.returncode == 0, result.stderr
    assert "2 linked" in result.stdout and "runny nose" in result.stdout


def test_cli_link_file_writes_jsonl_atomically(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text('id,body\n1,"A cough, then a runny nose"\n2,nothing to see here\n')
    out = tmp_path / "out" / "linked.jsonl"
    result = run_cli(
        "link", "--kg", str(LINKER_KG), "-i", str(texts), "--text-column", "body", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "linked 1 of 2 texts" in result.stdout
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["id"] == "1" and [e["iri"] for e in first["entities"]] == [
        "http://example.org/med/cough",
        "http://example.org/med/runny_nose",
    ]
    assert first["entities"][0]["start"] == 2 and first["entities"][0]["end"] == 7
    assert second["entities"] == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["linked.jsonl"]


def test_cli_link_bad_input_exits_1_with_a_clear_line(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("id,body\n1,a cough\n")
    cases = [
        (
            ["link", "--kg", str(LINKER_KG), "-i", str(texts), "-o", str(tmp_path / "o.jsonl")],
            "no column 'text'",
        ),
        (["link", "--kg", str(LINKER_KG)], "either a TEXT argument or --input"),
        (["link", "--kg", str(tmp_path / "nokg"), "a cough"], "file not found"),
        (["link", "--kg", str(LINKER_KG), "-i", str(texts)], "needs --output"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 1, args
        assert message in result.stderr and "Traceback" not in result.stderr
