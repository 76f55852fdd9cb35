"""Fuzzing the other parsers: labelled texts (CSV, TSV, JSONL, TXT), label maps, alias tables,
config files and ``key=value`` overrides.

Property (tests/fuzzing.py): anything either parses or raises a `KGFuseError` with a message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

import kg
from fusion.config import config_from_dict, load_config
from kg.config import KGConfig
from nlp.alias_table import AliasTable
from nlp.texts import read_label_map, read_records
from tests.fuzzing import (
    FRAGMENT,
    TEXT,
    encode,
    json_values,
    mutated,
    nested_json,
    parses_or_refuses,
)

CELL = st.one_of(TEXT, FRAGMENT)
DELIMITED_TEXTS = 'text,label\nmy fever,flu\n"a, quoted ""text""",cold\n'
JSONL_TEXTS = '{"text": "my fever", "label": "flu"}\n{"text": "a cough", "label": "cold"}\n'
ALIASES = (
    "# learned\nalias\tentity\tsupport\toccurrences\tsimilarity\nworn out\tfatigue\t12\t13\t0.61\n"
)
CONFIG = """kg: {files: [tests/fixtures/tiny.ttl]}
data: {train: tests/fixtures/tiny_train.csv, val_fraction: 0.25}
model: {mode: fused, hidden: 16}
train: {epochs: 2, lr: 0.01}
"""
SECTIONS = ["kg", "data", "linker", "subgraph", "encoder", "model", "train", "output"]
KEYS = ["files", "train", "epochs", "lr", "mode", "hidden", "threshold", "hops", "path", "x"]


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------- labelled texts


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt"])
@given(rows=st.lists(st.lists(CELL, max_size=4), min_size=0, max_size=6))
@example(rows=[["text", "label"], ["x" * 200_000, "flu"]])  # over csv's field limit
def test_delimited_texts_read_or_are_refused(
    tmp_path: Path, suffix: str, rows: list[list[str]]
) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    data = encode("\n".join(sep.join(r) for r in rows))
    path = write(tmp_path, f"texts{suffix}", data)
    parses_or_refuses(lambda: read_records(path, ("text", "label")))


@given(text=mutated(DELIMITED_TEXTS))
def test_mutated_csv_texts_read_or_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "texts.csv", encode(text))
    parses_or_refuses(lambda: read_records(path, ("text", "label")))


@given(
    lines=st.lists(
        st.one_of(
            json_values().map(lambda v: json.dumps(v, ensure_ascii=False)),
            st.sampled_from([nested_json(100_000), "1" * 5000, "[" * 50_000, '"\\ud800"']),
            TEXT,
        ),
        max_size=5,
    )
)
@example(lines=[nested_json(100_000)])  # deeper than Python's recursion limit
@example(lines=['{"text": ' + "9" * 5000 + "}"])  # over Python's 4,300-digit limit
def test_jsonl_texts_read_or_are_refused(tmp_path: Path, lines: list[str]) -> None:
    path = write(tmp_path, "texts.jsonl", encode("\n".join(lines)))
    parses_or_refuses(lambda: read_records(path, ("text",)))


@given(text=mutated(JSONL_TEXTS))
def test_mutated_jsonl_texts_read_or_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "texts.jsonl", encode(text))
    parses_or_refuses(lambda: read_records(path, ("text", "label")))


@given(rows=st.lists(st.lists(CELL, max_size=3), max_size=5), labels=st.lists(TEXT, max_size=3))
def test_label_maps_read_or_are_refused(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path, rows: list[list[str]], labels: list[str]
) -> None:
    path = write(tmp_path, "labels.tsv", encode("\n".join("\t".join(r) for r in rows)))
    parses_or_refuses(lambda: read_label_map(path, tiny_kg, labels))


# ----------------------------------------------------------------- alias tables


@given(text=st.one_of(mutated(ALIASES), st.text(st.characters(exclude_categories=[]))))
@example(text="alias\tentity\tsupport\nx\tflu\t" + "9" * 5000)
@example(text="alias\tentity\nx\t" + "y" * 200_000)
def test_alias_tables_parse_or_are_refused(tiny_kg: kg.KnowledgeGraph, text: str) -> None:
    table = parses_or_refuses(lambda: AliasTable.parse(text, "fuzz.tsv"))
    if isinstance(table, AliasTable):
        parses_or_refuses(lambda: table.resolve(tiny_kg))


@given(data=st.binary(max_size=200).map(lambda b: b"alias\tentity\n" + b))
def test_alias_table_files_load_or_are_refused(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "aliases.tsv", data)
    parses_or_refuses(lambda: AliasTable.load(path))


# ----------------------------------------------------------------- configs


def dotted_keys() -> st.SearchStrategy[str]:
    part = st.one_of(st.sampled_from(SECTIONS + KEYS), TEXT.filter(lambda t: "=" not in t))
    return st.lists(part, min_size=1, max_size=3).map(".".join)


@given(
    overrides=st.lists(
        st.tuples(dotted_keys(), json_values()).map(
            lambda kv: f"{kv[0]}={yaml.safe_dump(kv[1], default_flow_style=True).strip()}"
        ),
        max_size=4,
    )
)
def test_overrides_with_any_yaml_value_apply_or_are_refused(overrides: list[str]) -> None:
    parses_or_refuses(lambda: load_config(None, overrides))


@given(overrides=st.lists(st.one_of(TEXT, mutated("train.epochs=3")), min_size=1, max_size=3))
@example(overrides=["train.epochs=["])
@example(overrides=["train.epochs=" + "9" * 5000])
@example(overrides=["train.epochs=2001-02-30"])
@example(overrides=["output=!!float x"])
@example(overrides=["output=" + "[" * 5000])
def test_any_override_text_parses_or_is_refused(overrides: list[str]) -> None:
    parses_or_refuses(lambda: load_config(None, overrides))


@given(data=st.one_of(mutated(CONFIG).map(encode), st.binary(max_size=300)))
@example(data=b"kg: \xff\n")
@example(data=b"train: {epochs: " + b"9" * 5000 + b"}\n")
@example(data=b"train: {epochs: 2001-02-30}\n")
@example(data=b"kg: " + b"[" * 5000)
def test_config_files_load_or_are_refused(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "run.yaml", data)
    parses_or_refuses(lambda: load_config(path))


@given(data=st.dictionaries(st.sampled_from(SECTIONS + KEYS), json_values(), max_size=6))
def test_stored_configs_build_or_are_refused(data: dict) -> None:
    parses_or_refuses(lambda: config_from_dict(data, "bundle.json"))
    parses_or_refuses(lambda: KGConfig.from_dict(data))


# ----------------------------------------------------------------- stored metadata


@pytest.fixture(scope="module")
def compiled(tiny_kg: kg.KnowledgeGraph, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_kg.save(tmp_path_factory.mktemp("compiled") / "kg")


@given(data=st.data())
@example(data=None)  # replaced below by the explicit documents
def test_compiled_kg_metadata_loads_or_is_refused(compiled: Path, data: st.DataObject) -> None:
    original = (compiled / "kg.json").read_text(encoding="utf-8")
    docs = (
        ['{"format": ' + "9" * 5000 + "}", nested_json(100_000)]
        if data is None
        else [data.draw(mutated(original))]
    )
    try:
        for doc in docs:
            (compiled / "kg.json").write_bytes(encode(doc))
            parses_or_refuses(lambda: kg.open(compiled))
    finally:
        (compiled / "kg.json").write_text(original, encoding="utf-8")


@given(doc=st.one_of(json_values(max_leaves=8).map(json.dumps), TEXT))
@example(doc='{"format": "kgfuse-bundle", "format_version": ' + "9" * 5000 + "}")
@example(doc=nested_json(100_000))
@example(doc='{"format": "kgfuse-bundle", "format_version": 1, "files": {"../x": 1}}')
def test_bundle_metadata_is_read_or_refused(tmp_path: Path, doc: str) -> None:
    from fusion.bundle import read_meta, verify_bundle

    for name in ("model.safetensors", "node_features.safetensors", "kg/kg.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "bundle.json").write_bytes(encode(doc))
    meta = parses_or_refuses(lambda: read_meta(tmp_path))
    if isinstance(meta, dict):
        parses_or_refuses(lambda: verify_bundle(tmp_path, meta))
