"""Benchmark JSON names paths relative to the repository, never as absolute paths.

A result file is read on other machines and checked in: ``/home/alice/kgfuse/runs/x`` says
nothing there, and leaks who ran it. `relative_paths` rewrites every absolute path in a report
just before it is written: inside the repository as ``runs/x``; inside the temporary folder as
``<tmp>/name``; anywhere else relative to the repository (``../shared/data/...``).
`write_report` does both: the one way a benchmark writes its ``--json`` file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from kg.files import write_json

REPO = Path(__file__).resolve().parents[1]


def relative_path(path: str | Path, repo: Path = REPO) -> str:
    """``path`` as a benchmark JSON should hold it (see the module docstring).

    Args:
        path: an absolute path (a relative one is returned as it is).
        repo: the repository root the result is relative to.
    """
    if not os.path.isabs(path):
        return str(path)
    path = Path(os.path.normpath(path))  # symlinks kept: .venv/bin/python stays itself
    for root, prefix in ((repo, ""), (Path(tempfile.gettempdir()), "<tmp>/")):
        if path.is_relative_to(root):
            return prefix + path.relative_to(root).as_posix()
    return Path(os.path.relpath(path, repo)).as_posix()


def relative_paths(report: Any, repo: Path = REPO) -> Any:
    """A copy of a JSON-like ``report`` whose absolute-path strings are made relative.

    Strings that are absolute paths (start with ``/``, no newline) are rewritten wherever they
    sit: values, list items (command lines), dict keys. Other values are kept.
    """
    if isinstance(report, dict):
        return {relative_paths(k, repo): relative_paths(v, repo) for k, v in report.items()}
    if isinstance(report, (list, tuple)):
        return [relative_paths(v, repo) for v in report]
    if isinstance(report, Path) or (
        isinstance(report, str) and report.startswith("/") and "\n" not in report
    ):
        return relative_path(report, repo)
    return report


def write_report(path: str | Path, report: Any) -> None:
    """Write ``report`` to ``path`` as JSON, its paths made relative, atomically (kg/files.py):
    an interrupted benchmark leaves the last complete result in place."""
    write_json(path, relative_paths(report))
