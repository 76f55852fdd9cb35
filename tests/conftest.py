"""Shared fixtures: tiny graphs built locally, and the shared real data when present."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kg

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EX = "http://example.org/tiny/"


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def tiny_ttl() -> Path:
    return FIXTURES / "tiny.ttl"


@pytest.fixture(scope="session")
def tiny_kg(tiny_ttl: Path) -> kg.KnowledgeGraph:
    return kg.load(tiny_ttl)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: present on developer machines and in CI; a missing folder is a failure."""
    assert SHARED_DATA.is_dir(), f"the shared data folder {SHARED_DATA} is missing"
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `kgfuse` entry point in a subprocess (exit codes, stderr, no traceback)."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=300,
    )
