"""A data file without the text or label column: the error names the columns found and how to
point kgfuse at the right ones, on the command line and in a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.texts import DataError, read_records
from tests.conftest import run_cli_in_process


def test_read_records_names_the_options_that_pick_the_columns(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("body,category\nhello,a\n")
    with pytest.raises(DataError) as info:
        read_records(data, required=("text", "label"))
    assert str(info.value) == (
        f"{data}: no column 'text', 'label'; the columns are ['body', 'category']: name the "
        "ones to read (--text-column, --label-column on the command line; data.text_column, "
        "data.label_column in a config)"
    )


def test_kgfuse_link_on_a_file_without_the_column_says_to_pass_text_column(
    tiny_ttl: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("body\nI have a fever\n")
    monkeypatch.setenv("COLUMNS", "400")
    code = run_cli_in_process(monkeypatch, "link", "--kg", str(tiny_ttl), "-i", str(data), "--json")
    err = capsys.readouterr().err
    assert code == 1
    assert "no column 'text'; the columns are ['body']" in err and "--text-column" in err
