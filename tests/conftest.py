"""Shared fixtures: tiny graphs built locally, and the shared real data when present."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import kg

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EX = "http://example.org/tiny/"

# Property-based tests (tests/fuzzing.py): repeatable and quick in `make test`; `make fuzz`
# (HYPOTHESIS_PROFILE=fuzz) draws fresh random inputs, many more of them.
settings.register_profile(
    "kgfuse",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
settings.register_profile(
    "fuzz", settings.get_profile("kgfuse"), max_examples=500, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kgfuse"))


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


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real `kgfuse` entry point in a subprocess (exit codes, stderr, no traceback)."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def oxigraph_endpoint(files: Sequence[Path], location: Path) -> Iterator[str]:
    """A real Oxigraph server (`oxigraph serve-read-only`) on a free loopback port, loaded with
    ``files`` into ``location``; yields its SPARQL query URL and stops it on exit."""
    found = Path(sys.executable).with_name("oxigraph")
    cli = str(found) if found.exists() else shutil.which("oxigraph")
    if cli is None:
        pytest.fail(
            "the `oxigraph` CLI is missing: install it with `.venv/bin/pip install oxigraph`"
        )
    for f in files:
        subprocess.run(
            [cli, "load", "--location", str(location), "--file", str(f)],
            check=True,
            capture_output=True,
        )
    port = free_port()
    server = subprocess.Popen(
        [cli, "serve-read-only", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/query"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}?query=ASK%7B%7D", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"oxigraph serve exited: {server.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz0123456789.,!?-'", *["the", "a", "an", "and", "of", "to", "in", "my", "i", "have", "has", "is", "it", "with", "fever", "cough", "cold", "flu", "pain", "joint", "skin", "rash", "influenza", "sneezing", "runny", "nose", "headache", "virus", "disease", "symptom"]]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) saved as a local HF folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(
        folder
    )
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=128,
    )  # fmt: skip
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fused bundle trained on the tiny config (two epochs, seconds). Copy it before changing it."""
    from fusion.train import main

    out = tmp_path_factory.mktemp("tiny-run") / "tiny"
    overrides = [f"encoder.path={tiny_bert}", f"output={out}", "train.threads=1"]
    return Path(main(REPO / "configs" / "tiny.yaml", overrides, progress=False).bundle)
