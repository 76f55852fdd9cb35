"""kg/strings.py: the string table a compiled KG keeps its IRIs and labels in."""

from __future__ import annotations

import pytest

from kg.strings import StringTable


@pytest.mark.parametrize(
    "strings",
    [
        [],
        [""],
        ["http://ex.org/a", "", "b"],
        ["été", "a", "日本", "😀x", ""],  # multi-byte: byte lengths differ from lengths
    ],
)
def test_strings_table_gives_back_what_it_was_built_from(strings: list[str]) -> None:
    table = StringTable.from_strings(iter(strings))
    assert list(table) == strings
    assert [table[i] for i in range(len(strings))] == strings
    assert table.offsets[-1] == sum(len(s.encode("utf-8")) for s in strings)


def test_strings_sorted_table_finds_by_binary_search() -> None:
    strings = sorted(["b", "a", "é", "ab", "z"], key=lambda s: s.encode("utf-8"))
    table = StringTable.from_strings(strings)
    assert [table.find_sorted(s) for s in strings] == list(range(len(strings)))
    assert table.find_sorted("c") == -1
