"""Shared fixtures: tiny graphs built locally, and the shared real data when present."""

from __future__ import annotations

import contextlib
import csv
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
from typer.testing import CliRunner

import kg
from fusion.features import FeatureTable, NodeFeatures, text_key
from kg.cli import app as kg_app

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
    *args: str, cwd: Path | None = None, timeout: float = 300, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """Run the real `kgfuse` entry point in a subprocess (exit codes, stderr, no traceback), in
    a terminal ``columns`` wide."""
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )


def run_cli_in_process(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run `kgfuse ARGS` in this process (so pytest's capsys sees its output); the exit code."""
    from api.cli import main

    monkeypatch.setattr(sys, "argv", ["kgfuse", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def graph_from_rows(rows: str, base: str, folder: Path) -> kg.KnowledgeGraph:
    """A KG from lines of ``subject predicate object`` local names, each prefixed by ``base``."""
    triples = [line.split() for line in rows.strip().splitlines()]
    path = folder / "rows.nt"
    path.write_text("".join(f"<{base}{s}> <{base}{p}> <{base}{o}> .\n" for s, p, o in triples))
    return kg.load(path)


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


TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789.,!?-'",
    *(
        "the a an and of to in my i have has is it with fever cough cold flu pain joint skin rash "
        "influenza sneezing runny nose headache virus disease symptom"
    ).split(),
]


def oxigraph_store(triples: Sequence[Path], folder: Path) -> Path:
    """An on-disk store in ``folder`` made by `kgfuse kg load --backend oxigraph`."""
    store = folder / "store"
    args = ["load", *map(str, triples), "--backend", "oxigraph", "--store", str(store)]
    result = CliRunner().invoke(kg_app, args)
    assert result.exit_code == 0, result.output
    return store


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
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
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


SPECIES_TYPES = ("water", "fire", "grass")


def write_species_data(folder: Path) -> dict[str, Path]:
    """A small data set where the graph decides, like pokedex: 48 invented species in 16
    evolution chains of one type each; texts name a species and say nothing of its type. Type
    facts exist for the 40 species that training texts mention; the 8 test_unseen species (one
    per chain, never the chain's only one) have none, so only a relative's fact answers."""
    syllables = ["ka", "zu", "mo", "ri", "te", "lo", "vi", "na", "pe", "do", "si", "gu"]
    names = [  # distinct: (i % 12, i // 12) differ for every i
        (syllables[i % 12] + syllables[4 + i // 12] + syllables[(i * 7 + 1) % 12]).title()
        for i in range(48)
    ]
    ex = "http://example.org/species/"
    lines = [
        f'<{ex}type/{t}> <http://www.w3.org/2000/01/rdf-schema#label> "{t}" .'
        for t in SPECIES_TYPES
    ]
    unseen = {3 * c + 2 for c in range(0, 16, 2)}  # the third species of every other chain
    for i, name in enumerate(names):
        chain, kind = i // 3, SPECIES_TYPES[(i // 3) % 3]
        s = f"<{ex}species/{i}>"
        lines.append(f'{s} <http://www.w3.org/2000/01/rdf-schema#label> "{name}" .')
        lines.append(f"{s} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{ex}Species> .")
        lines.append(f"{s} <{ex}in_chain> <{ex}chain/{chain}> .")
        if i % 3:
            lines.append(f"{s} <{ex}evolves_from> <{ex}species/{i - 1}> .")
        if i not in unseen:
            lines.append(f"{s} <{ex}has_type> <{ex}type/{kind}> .")
    (folder / "kg.nt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "label_map.tsv").write_text(
        "label\tentity\n" + "".join(f"{t}\t{ex}type/{t}\n" for t in SPECIES_TYPES)
    )
    says = [
        "it was seen near the old bridge",
        "it sleeps all day",
        "it is rarely met",
        "it runs fast at night",
        "it has a loud voice",
    ]

    def write(name: str, rows: list[tuple[str, str]]) -> Path:
        path = folder / name
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        return path

    def rows(species: list[int], per: int, offset: int) -> list[tuple[str, str]]:
        return [
            (f"{names[i]}: {says[(i + k + offset) % len(says)]}.", SPECIES_TYPES[(i // 3) % 3])
            for i in species
            for k in range(per)
        ]

    known = [i for i in range(48) if i not in unseen]
    return {
        "kg": folder / "kg.nt",
        "label_map": folder / "label_map.tsv",
        "train": write("train.csv", rows(known, 4, 0)),
        "seen": write("test_seen.csv", rows(known, 1, 4)),
        "unseen": write("test_unseen.csv", rows(sorted(unseen), 3, 0)),
    }


@pytest.fixture(scope="session")
def species_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_species_data(tmp_path_factory.mktemp("species"))


def species_overrides(data: dict[str, Path], tiny_bert: Path, out: Path, *more: str) -> list[str]:
    """A run on `species_data` with the tiny BERT: only the KG, data and label map are set,
    every other setting is kgfuse's own (``auto`` included)."""
    return [
        f"kg.files=[{data['kg']}]",
        f"kg.label_map={data['label_map']}",
        f"data.train={data['train']}",
        f"data.tests={{seen: {data['seen']}, unseen: {data['unseen']}}}",
        f"encoder.path={tiny_bert}",
        f"output={out}",
        "train.threads=1",
        "train.epochs=2",
        "encoder.max_length=32",
        "model.hidden=16",
        *more,
    ]


def hashed_features(graph: kg.KnowledgeGraph, dim: int) -> NodeFeatures:
    """Node features without an encoder: each entity text's vector is drawn from a generator
    seeded by the text (fixed across runs and graphs)."""

    def embed(texts: list[str]) -> np.ndarray:
        seeds = [int.from_bytes(text_key(t)[:8], "little") for t in texts]
        draws = [np.random.default_rng(s).standard_normal(dim) for s in seeds]
        return np.asarray(draws, dtype=np.float32).reshape(len(texts), dim)

    return NodeFeatures(graph, FeatureTable(dim, embed))


def unread_features(graph: kg.KnowledgeGraph, dim: int) -> NodeFeatures:
    """Node features that fail the test if any entity is embedded (models that read none)."""

    def embed(texts: list[str]) -> np.ndarray:
        raise AssertionError(f"this model should read no node features (asked for {texts[:3]})")

    return NodeFeatures(graph, FeatureTable(dim, embed))
