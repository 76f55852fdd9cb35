"""Benchmark results name paths relative to the repository, never the machine they ran on."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "bench" / "results").glob("*.json"))


@pytest.fixture(scope="module")
def relpaths() -> Iterator[Any]:
    sys.path.insert(0, str(REPO / "bench"))
    import relpaths

    yield relpaths
    sys.path.remove(str(REPO / "bench"))


def test_paths_become_relative_to_the_repository(relpaths: Any) -> None:
    repo = Path("/srv/alice/kgfuse")
    tmp = Path(tempfile.gettempdir())
    assert relpaths.relative_path(repo / "runs" / "demo" / "bundle", repo) == "runs/demo/bundle"
    assert relpaths.relative_path(tmp / "kgfuse-x" / "a.nt", repo) == "<tmp>/kgfuse-x/a.nt"
    assert relpaths.relative_path("/srv/alice/shared/data/kg.nt", repo) == "../shared/data/kg.nt"
    assert relpaths.relative_path("bench/results/x.json", repo) == "bench/results/x.json"


def test_every_absolute_path_in_a_report_is_rewritten(relpaths: Any) -> None:
    repo = Path("/srv/alice/kgfuse")
    report = {
        "parameters": {"bundle": repo / "runs" / "b", "seconds": 20.0, "note": "a/b /c"},
        "commands": [[f"{repo}/.venv/bin/python", "bench/x.py", "--port", "8000"]],
        f"{repo}/key": [None, True, 3],
    }
    assert relpaths.relative_paths(report, repo) == {
        "parameters": {"bundle": "runs/b", "seconds": 20.0, "note": "a/b /c"},
        "commands": [[".venv/bin/python", "bench/x.py", "--port", "8000"]],
        "key": [None, True, 3],
    }


def test_a_written_report_holds_relative_paths(relpaths: Any, tmp_path: Path) -> None:
    target = tmp_path / "results" / "x.json"  # the folder is made
    relpaths.write_report(target, {"bundle": REPO / "runs" / "b", "seconds": 2.5})
    assert json.loads(target.read_text(encoding="utf-8")) == {"bundle": "runs/b", "seconds": 2.5}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]  # no temporary left behind


def _absolute_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _absolute_strings(k)
            yield from _absolute_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _absolute_strings(v)
    elif isinstance(value, str) and value.startswith("/"):
        yield value


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_files_hold_no_absolute_paths(path: Path) -> None:
    found = list(_absolute_strings(json.loads(path.read_text(encoding="utf-8"))))
    assert not found, f"{path.name} names absolute paths: {found[:3]}"
