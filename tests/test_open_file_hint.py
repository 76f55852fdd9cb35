"""kg.open given a triples file: the fix it names never writes a folder over that file."""

from __future__ import annotations

from pathlib import Path

import pytest

import kg
from kg.errors import KGStoreError


def test_kg_open_of_a_triples_file_never_says_to_compile_onto_it(tiny_ttl: Path) -> None:
    with pytest.raises(KGStoreError) as info:
        kg.open(tiny_ttl)
    message = str(info.value)
    assert f"-o {tiny_ttl}`" not in message  # `kgfuse kg load ... -o tiny.ttl` would overwrite it
    assert f"kgfuse kg load {tiny_ttl} -o FOLDER" in message
