"""kg.files: every write is all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg.files import atomic_file, write_bytes, write_json, write_text


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "first")
    write_text(target, "sécond")
    assert target.read_text(encoding="utf-8") == "sécond"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_json_and_bytes(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"name": "Pikachu é"})
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == {"name": "Pikachu é"}
    assert (tmp_path / "a.json").read_text(encoding="utf-8").endswith("\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
