"""Reading text data files: formats and the errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.texts import DataError, read_records


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.csv", 'text,label\n"hello, world",a\nbye,b\n'),
        ("d.tsv", "text\tlabel\nhello, world\ta\nbye\tb\n"),
        ("d.jsonl", '{"text": "hello, world", "label": "a"}\n\n{"text": "bye", "label": "b"}\n'),
    ],
)
def test_read_records_every_format(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    rows = read_records(path, required=("text", "label"))
    assert [(r["text"], r["label"]) for r in rows] == [("hello, world", "a"), ("bye", "b")]


def test_read_records_txt_is_one_text_per_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("first\n\nsecond\n")
    assert [r["text"] for r in read_records(path)] == ["first", "second"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", "body,label\nx,a\n", "no column 'text'; the columns are ['body', 'label']"),
        ("d.csv", "text,label\n,a\n", "row 1 has an empty 'text'"),
        ("d.csv", "", "the file is empty"),
        ("d.csv", "text,label\n", "no rows"),
        ("d.jsonl", '{"text": "a"}\n[1]\n', "d.jsonl:2: each line must be a JSON object"),
        ("d.jsonl", '{"text": \n', "d.jsonl:1: invalid JSON"),
        ("d.xlsx", "x", "cannot read .xlsx files"),
        ("d.csv", 'text,label\nok,a\n"never closed,b\nmore,c\nrest,d\n', "d.csv:3: a quote"),
        ("d.csv", 'text,label\n"two\nlines",a\n,b\n', "d.csv:4: row 2 has an empty 'text'"),
        ("d.tsv", 'text\tlabel\nok\ta\nx\t"b\n', "d.tsv:3: a quote"),
    ],
)
def test_read_records_errors_name_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_records(path)
    assert message in str(info.value)


def test_read_records_non_utf8_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("text\ncafé\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_records(path)
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "none.csv")
