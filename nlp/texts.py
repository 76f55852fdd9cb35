"""Read texts (and any other columns) from CSV, TSV, JSONL or plain-text files, and label maps
(which KG entity each class label stands for)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from kg.delimited import numbered_rows
from kg.encoding import recode_hint
from kg.errors import AmbiguousEntityError, EntityNotFoundError, KGFuseError
from kg.protocol import Graph

TEXT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}


class DataError(KGFuseError):
    """A data file is missing, unreadable, or lacks what is asked of it."""


# Anything but whitespace, control characters and the invisible format characters (soft
# hyphen, zero-width spaces and joiners, direction marks, word joiner, byte order mark).
_VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


class TextProblem(NamedTuple):
    kind: str  # "invalid" (not valid Unicode), "empty" or "too_long"
    message: str  # completes "text N ...": what is wrong and what to send instead

    @property
    def code(self) -> str:
        """The error code the service and ``kgfuse predict`` give such a text."""
        return "text_too_long" if self.kind == "too_long" else f"{self.kind}_text"


def text_problem(text: str, max_chars: int | None = None) -> TextProblem | None:
    """Why ``text`` cannot be classified, or None when it can.

    A lone surrogate (what undecodable bytes become, e.g. in a command-line argument) is not
    valid Unicode and breaks the tokenizers; a text of nothing but whitespace and invisible
    characters has nothing to classify; a text over ``max_chars`` (when given: the linker's
    limit, `nlp.linker.text_limit`) would be refused by the linker.
    """
    if max_chars is not None and len(text) > max_chars:
        return TextProblem(
            "too_long",
            f"has {len(text):,} characters, over the linker's limit of {max_chars:,}; "
            "split it into shorter texts",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return TextProblem(
            "invalid",
            f"is not valid UTF-8 text: it holds a lone surrogate U+{ord(text[e.start]):04X} at "
            f"character {e.start}; send the text encoded as UTF-8",
        )
    if _VISIBLE.search(text) is None:
        return TextProblem(
            "empty", "is empty (only whitespace or invisible characters); send text to classify"
        )
    return None


def check_text_list(texts: Sequence[str], first: int = 1) -> None:
    """Raise `DataError` when ``texts`` is one string (its characters would be read as texts)
    or an iterator (the check would use it up), or holds something that is not a string
    (naming it, numbered from ``first``)."""
    if isinstance(texts, str | bytes):
        raise DataError(
            f"texts must be a list of strings, not one {type(texts).__name__}: pass [text]"
        )
    if isinstance(texts, Iterator) or not isinstance(texts, Iterable):
        raise DataError(
            f"texts must be a list of strings, not {type(texts).__name__}: pass list(texts)"
        )
    for i, text in enumerate(texts, first):
        if not isinstance(text, str):
            raise DataError(
                f"text {i} is {type(text).__name__}, not a string; pass the texts as strings"
            )


def check_texts(texts: Sequence[str], first: int = 1) -> None:
    """Raise `DataError` naming the first text (numbered from ``first``) that `text_problem`
    refuses, or that is not a string; one string given for the list is refused as such (its
    characters would otherwise be classified one by one), and so is an iterator."""
    check_text_list(texts, first)
    for i, text in enumerate(texts, first):
        problem = text_problem(text)
        if problem:
            raise DataError(f"text {i} {problem.message}")


def read_records(path: str | Path, required: tuple[str, ...] = ("text",)) -> list[dict[str, str]]:
    """Rows of ``path`` as dicts; every column in ``required`` must exist and be non-empty.

    ``.txt`` files hold one text per line (column ``text``). Errors name the file, the line and
    the columns that were found.
    """
    path = Path(path)
    kind = text_format(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise not_utf8(path) from e
    if kind == "txt":
        numbered = [(n, line) for n, line in enumerate(_lines(content), 1) if line.strip()]
        rows, lines = [{"text": line} for _, line in numbered], [n for n, _ in numbered]
    elif kind == "jsonl":
        rows, lines = _read_jsonl(path, content, required)
    else:
        rows, lines = _read_delimited(path, content, "\t" if kind == "tsv" else ",", required)
    if not rows:
        raise no_rows(path)
    columns = list(rows[0])
    missing = [c for c in required if c not in columns]
    if missing and (other := other_delimiter(columns, kind)):
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; {other}")
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(map(repr, missing))}; the columns are {columns}: name "
            "the ones to read (--text-column, --label-column on the command line; "
            "data.text_column, data.label_column in a config)"
        )
    for n, (row, line) in enumerate(zip(rows, lines, strict=True), 1):
        for c in required:
            if row.get(c) is None or not str(row[c]).strip():
                raise DataError(f"{path}:{line}: row {n} has an empty {c!r}")
    return rows


def not_utf8(path: Path) -> DataError:
    """The error for a data file that is not UTF-8: the line of its first undecodable byte,
    and how to convert it (from UTF-16, or most likely Latin-1)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return DataError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} cannot be decoded); "
            + recode_hint(data[:2])
        )
    return DataError(f"{path}: not UTF-8; {recode_hint(data[:2])}")


def text_format(path: Path) -> str:
    """The kind of data file ``path`` is, by its extension: one of `TEXT_FORMATS`' values.

    Raises:
        DataError: a folder, an extension kgfuse does not read, or no such file.
    """
    kind = TEXT_FORMATS.get(path.suffix.lower())
    if path.is_dir():  # a folder is no file of an unknown kind
        raise DataError(missing_file(path))
    if kind is None:
        raise DataError(
            f"{path}: cannot read {path.suffix or 'extensionless'} files; use one of "
            f"{', '.join(TEXT_FORMATS)}"
        )
    if not path.is_file():
        raise DataError(missing_file(path))
    return kind


def no_rows(path: Path) -> DataError:
    """The error for a data file that holds no text: only a header, or blank lines."""
    kind = TEXT_FORMATS.get(path.suffix.lower())
    if kind in ("csv", "tsv"):
        return DataError(f"{path}: no rows, only the header; add one row per text under it")
    if kind == "jsonl":
        return DataError(
            f'{path}: no records (the file is blank); add one JSON object per line, e.g. {{"text": "..."}}'
        )
    return DataError(f"{path}: no texts (the file is blank); add one text per line")


def missing_file(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read: it is absent or a folder."""
    if path.is_dir():
        return f"{path} is a folder; give the file inside it"
    return f"{path}: file not found"


def _lines(content: str) -> list[str]:
    """The lines of ``content`` as an editor counts them: split at \\n, \\r\\n or \\r only (not at
    the other breaks `str.splitlines` knows, such as U+2028, which may sit inside a text)."""
    return [line.rstrip("\r\n") for line in io.StringIO(content, newline="")]


def _read_jsonl(
    path: Path, content: str, required: Sequence[str] = ()
) -> tuple[list[dict[str, str]], list[int]]:
    """JSON objects, one a line, and the line of each; a ``required`` key must hold a string
    or a number (a null, list or object is refused, not read as its JSON text)."""
    rows, lines = [], []
    for n, line in enumerate(_lines(content), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=unique_keys)
        except RecursionError:
            raise DataError(f"{path}:{n}: the JSON nests too deep to read") from None
        except ValueError as e:  # JSONDecodeError, or a number over 4,300 digits
            raise DataError(f"{path}:{n}: invalid JSON ({getattr(e, 'msg', e)})") from e
        if not isinstance(record, dict):
            raise DataError(
                f"{path}:{n}: each line must be a JSON object, got {type(record).__name__}"
            )
        for key in required:
            check_json_value(path, n, key, record.get(key, ""))
        rows.append({k: v if isinstance(v, str) else json.dumps(v) for k, v in record.items()})
        lines.append(n)
    return rows, lines


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict (`json.loads`' ``object_pairs_hook``), refusing a key
    given twice: JSON parsers keep the last value without a word."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice in one object; keep one of them")
        seen.add(key)
    return dict(pairs)


def check_json_value(path: Path, line: int, key: str, value: object) -> None:
    """Refuse a JSON value that is no string or number where text or a label must be."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        got = "null" if value is None else type(value).__name__
        raise DataError(
            f"{path}:{line}: {key!r} must be a string (got {got}); write it as a JSON string"
        )


def delimited_rows(
    path: Path, lines: Iterable[str], delimiter: str
) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, fields) of each non-blank row of CSV or TSV ``lines`` (a file
    opened with ``newline=""``), read one at a time. Strict quoting: a malformed row, or a
    quote that never closes, raises `DataError` naming ``path`` and the row's first line."""

    def error(line: int, problem: str) -> DataError:
        return DataError(f"{path}:{line}: {problem}")

    for start, row in numbered_rows(lines, delimiter, error):
        if row:  # a blank line has none
            yield start, row


def _read_delimited(
    path: Path, content: str, delimiter: str, required: Sequence[str]
) -> tuple[list[dict[str, str]], list[int]]:
    """Rows of a CSV or TSV text as dicts keyed by the header, and the line each row starts on
    (a quoted field may span lines). A missing field reads as "". Strict quoting: a quote that
    never closes is reported at the line where its row starts, not at the end of the file."""
    header: list[str] | None = None
    rows, lines = [], []
    for start, row in delimited_rows(path, io.StringIO(content, newline=""), delimiter):
        if header is None:
            header = check_header(path, start, row)
            continue
        check_width(path, start, row, header, delimiter)
        rows.append({h: row[i] if i < len(row) else "" for i, h in enumerate(header)})
        lines.append(start)
    if header is None:
        raise DataError(
            f"{path}: the file is empty; it needs a header row with {', '.join(required)}"
        )
    return rows, lines


def check_header(path: Path, line: int, header: list[str]) -> list[str]:
    """``header``, refused when it names a column twice: which of the two is read would be
    left to chance (one command read the first, another the last)."""
    seen: dict[str, int] = {}
    for n, name in enumerate(header, 1):
        if name.strip() and name in seen:
            raise DataError(
                f"{path}:{line}: the header names column {name!r} twice (columns {seen[name]} "
                f"and {n}); rename one of them, so that it is clear which to read"
            )
        seen.setdefault(name, n)
    return header


def other_delimiter(columns: list[str], kind: str) -> str | None:
    """What to do when a one-column header holds another file kind's delimiter (Excel in many
    locales saves "CSV" with semicolons): the whole header reads as one column name."""
    if kind not in ("csv", "tsv") or len(columns) != 1:
        return None
    for sign, name, fix in (
        ("\t", "tabs", "rename it .tsv"),
        (",", "commas", "rename it .csv"),
        (";", "semicolons", "save it with commas (.csv) or tabs (.tsv)"),
        ("|", "bars", "save it with commas (.csv) or tabs (.tsv)"),
    ):
        if sign != ("\t" if kind == "tsv" else ",") and sign in columns[0]:
            return (
                f"its header {columns[0]!r} is separated by {name}, and a .{kind} file by "
                f"{'tabs' if kind == 'tsv' else 'commas'}: {fix}"
            )
    return None


def check_width(path: Path, line: int, row: list[str], header: list[str], delimiter: str) -> None:
    """Refuse a row with more (non-empty) fields than the header has columns: most often a
    text with an unquoted comma, which would be cut at the comma without a word."""
    if len(row) > len(header) and any(field.strip() for field in row[len(header) :]):
        sign = "a tab" if delimiter == "\t" else repr(delimiter)
        columns = f"{len(header)} column" + ("s" if len(header) != 1 else "")
        raise DataError(
            f"{path}:{line}: this row has {len(row)} fields but the header names {columns}; "
            f'a text that holds {sign} must be quoted (e.g. "a cough, then a fever"), or add '
            "the missing column to the header"
        )


def read_label_map(path: str | Path, graph: Graph, labels: Sequence[str]) -> list[int]:
    """Entity ids of the label nodes, in the order of ``labels``; every label must be mapped."""
    path = Path(path)
    if not path.is_file():
        where = "is a folder; give the TSV file inside it" if path.is_dir() else "not found"
        raise DataError(f"label map {path} {where}")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            rows = [r for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise DataError(
            f"label map {path}: not UTF-8 ({e.reason} at byte {e.start}); "
            + recode_hint(path.read_bytes()[:2])
        ) from e
    except csv.Error as e:
        raise DataError(f"label map {path}:{reader.line_num}: cannot read this row ({e})") from e
    mapping: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        if len(row) != 2:
            raise DataError(
                f"{path}:{n}: expected 2 tab-separated columns (label, entity), found {len(row)}"
            )
        mapping[row[0].strip()] = row[1].strip()
    missing = [label for label in labels if label not in mapping]
    if missing:
        header = ("label", "entity")
        mapped = [
            label
            for label, entity in mapping.items()
            if label not in labels and (label.lower(), entity.lower()) != header
        ]
        raise DataError(
            f"{path} maps no entity for label(s) {missing}; add a row `label<TAB>entity IRI` for each"
            + (
                f" (it maps {mapped[:10]}, which no text has: spelt as in the data?)"
                if mapped
                else ""
            )
        )
    return [_label_node(graph, path, label, mapping[label]) for label in labels]


def _label_node(graph: Graph, path: Path, label: str, entity: str) -> int:
    """The id of the entity a label map row names; an error names the row when the KG lacks it."""
    try:
        return graph.resolve(entity)
    except (EntityNotFoundError, AmbiguousEntityError) as e:
        raise DataError(
            f"{path}: label {label!r} maps to {entity!r}, but {e}; give the IRI of the class's "
            "node in the KG (`kgfuse kg search NAME --kg KG` finds it)"
        ) from e
