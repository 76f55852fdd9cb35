"""CSV and TSV rows with the line each one starts on, and the csv module's errors in words that
name the fix. Triples files (kg/parse.py) and data files (nlp/texts.py) are read through it."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator


def numbered_rows(
    lines: Iterable[str], delimiter: str, error: Callable[[int, str], Exception]
) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, fields) of each row of ``lines`` (a file opened with
    ``newline=""``; a quoted field may span lines), read one at a time, blank rows included.

    Strict quoting: a quote that never closes is an error, not one field of the rest of the
    file. A row csv cannot read raises ``error(line, problem)``, ``problem`` saying what to fix.
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise error(start, _problem(e)) from e
        yield start, row


def _problem(error: csv.Error) -> str:
    if "unexpected end of data" in str(error):
        return (
            'a quote (") opened in this row never closes, so the rows after it would be read '
            'as one field; close it, double it (""), or remove it'
        )
    if "field larger than field limit" in str(error):
        return (
            f"a field of this row is longer than {csv.field_size_limit():,} characters, the "
            'most a CSV or TSV field may hold; shorten it (a quote (") that never closes also '
            "makes one field of the rows after it: check the quotes before it)"
        )
    return (
        f"malformed row ({error}); quote a field that holds the delimiter, a quote or a line "
        'break, and double each quote inside it ("")'
    )
