"""Compiled folders: round trip, fingerprint, atomic writes and damaged folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kg
from kg.files import atomic_directory
from kg.storage import INDEX_FILE, META_FILE


def test_save_then_open_gives_the_same_graph(tiny_kg: kg.KnowledgeGraph, tmp_path: Path) -> None:
    tiny_kg.save(tmp_path / "kg")
    again = kg.open(tmp_path / "kg")
    assert again.fingerprint == tiny_kg.fingerprint == again.compute_fingerprint()
    assert list(again.entities) == list(tiny_kg.entities)
    assert np.array_equal(again.indptr, tiny_kg.indptr)
    assert again.config == tiny_kg.config
    flu = again.resolve("influenza")
    assert again.text(flu) == tiny_kg.text(flu)
    assert [p.triples for p in again.paths(flu, again.resolve("cough"))] == [
        p.triples for p in tiny_kg.paths(flu, tiny_kg.resolve("cough"))
    ]


def test_fingerprint_changes_with_content(tiny_ttl: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.nt"
    ex = "http://example.org/tiny/"
    extra.write_text(f"<{ex}flu> <{ex}hasSymptom> <{ex}headache> .\n")
    assert kg.load([tiny_ttl, extra]).fingerprint != kg.load(tiny_ttl).fingerprint


def test_open_refuses_a_corrupt_index(tiny_kg: kg.KnowledgeGraph, tmp_path: Path) -> None:
    folder = tiny_kg.save(tmp_path / "kg")
    index = folder / INDEX_FILE
    data = bytearray(index.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last array
    index.write_bytes(bytes(data))
    with pytest.raises(kg.KGStoreError, match="fingerprint"):
        kg.open(folder)
    index.write_bytes(b"garbage")
    with pytest.raises(kg.KGStoreError, match="corrupt"):
        kg.open(folder)


@pytest.mark.parametrize("missing", [META_FILE, INDEX_FILE])
def test_open_names_the_missing_file(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path, missing: str
) -> None:
    folder = tiny_kg.save(tmp_path / "kg")
    (folder / missing).unlink()
    with pytest.raises(kg.KGStoreError, match=f"{missing} is missing"):
        kg.open(folder)


def test_open_missing_folder_and_other_versions(tiny_kg: kg.KnowledgeGraph, tmp_path: Path) -> None:
    with pytest.raises(kg.KGStoreError, match="no compiled KG folder"):
        kg.open(tmp_path / "nowhere")
    folder = tiny_kg.save(tmp_path / "kg")
    meta = json.loads((folder / META_FILE).read_text())
    meta["format_version"] = 99
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(kg.KGStoreError, match="version 99"):
        kg.open(folder)


def test_save_replaces_an_existing_folder_atomically(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    target = tiny_kg.save(tmp_path / "kg")
    (target / "stale.txt").write_text("from an older save")
    tiny_kg.save(target)
    assert not (target / "stale.txt").exists()
    assert kg.open(target).fingerprint == tiny_kg.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["kg"]  # no temporary folders left


def test_atomic_directory_leaves_the_old_folder_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("new")
        raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_kg_storage_string_table_reads_back_every_string() -> None:
    """Items, negative items, slices with steps and iteration give the strings stored."""
    from kg.strings import StringTable

    strings = ["alpha", "", "bêta", "γάμμα", "d"]
    table = StringTable.from_strings(strings)
    assert list(table) == strings
    assert [table[i] for i in range(-5, 5)] == strings + strings
    assert (
        table[1:4] == strings[1:4] and table[::2] == strings[::2] and table[::-1] == strings[::-1]
    )
    with pytest.raises(IndexError):
        table[5]
    again = StringTable(table.blob.copy(), table.offsets.copy())
    assert again == table and list(again) == strings
