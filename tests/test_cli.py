"""The `kgfuse kg` commands: exit codes, readable errors, and nothing half-written."""

from __future__ import annotations

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
