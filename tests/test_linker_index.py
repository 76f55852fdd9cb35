"""Writing the linker index (nlp/linker_index.py): a failed write keeps the old index."""

from __future__ import annotations

from pathlib import Path

import pytest

import kg
from nlp.linker import from_kg
from nlp.linker_index import linker_of, save_index

FIXTURE = Path(__file__).parent / "fixtures" / "linker.ttl"


def test_linker_index_failed_save_keeps_the_old_index_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = kg.load(FIXTURE)
    nlp = from_kg(graph)
    folder = save_index(nlp, tmp_path / "kg.linker")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _, _, disambiguator = linker_of(nlp)._ready()

    def fail(_: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(disambiguator, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_index(nlp, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg.linker"]
    assert linker_of(from_kg(graph, index=str(folder))).index_loaded
