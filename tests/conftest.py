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
