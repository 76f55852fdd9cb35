"""Read texts (and any other columns) from CSV, TSV, JSONL or plain-text files, and label maps
(which KG entity each class label stands for)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from kg.errors import KGFuseError
from kg.graph import KnowledgeGraph
from kg.store_graph import StoreGraph

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


def read_records(path: str | Path, required: tuple[str, ...] = ("text",)) -> list[dict[str, str]]:
    """Rows of ``path`` as dicts; every column in ``required`` must exist and be non-empty.

    ``.txt`` files hold one text per line (column ``text``). Errors name the file, the line and
    the columns that were found.
    """
    path = Path(path)
    kind = TEXT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: cannot read {path.suffix or 'extensionless'} files; use one of {', '.join(TEXT_FORMATS)}"
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 ({e.reason} at byte {e.start}); re-encode it as UTF-8"
        ) from e
    if kind == "txt":
        rows = [{"text": line} for line in content.splitlines() if line.strip()]
    elif kind == "jsonl":
        rows = []
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except RecursionError:
                raise DataError(f"{path}:{n}: the JSON nests too deep to read") from None
            except ValueError as e:  # JSONDecodeError, or a number over 4,300 digits
                raise DataError(f"{path}:{n}: invalid JSON ({getattr(e, 'msg', e)})") from e
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{n}: each line must be a JSON object, got {type(record).__name__}"
                )
            rows.append({k: v if isinstance(v, str) else json.dumps(v) for k, v in record.items()})
    else:
        reader = csv.DictReader(content.splitlines(), delimiter="\t" if kind == "tsv" else ",")
        try:
            rows = [dict(r) for r in reader]
        except csv.Error as e:  # e.g. a cell over csv's field limit (131,072 characters)
            raise DataError(f"{path}:{reader.line_num}: cannot read this row ({e})") from e
        if reader.fieldnames is None:
            raise DataError(
                f"{path}: the file is empty; it needs a header row with {', '.join(required)}"
            )
    if not rows:
        raise DataError(f"{path}: no rows")
    columns = list(rows[0])
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(map(repr, missing))}; the columns are {columns}"
        )
    for n, row in enumerate(rows, 1):
        for c in required:
            if row.get(c) is None or not str(row[c]).strip():
                raise DataError(f"{path}: row {n} has an empty {c!r}")
    return rows


def read_label_map(
    path: str | Path, graph: KnowledgeGraph | StoreGraph, labels: Sequence[str]
) -> list[int]:
    """Entity ids of the label nodes, in the order of ``labels``; every label must be mapped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label map {path} not found")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            rows = [r for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise DataError(f"label map {path}: not UTF-8 ({e.reason} at byte {e.start})") from e
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
        raise DataError(
            f"{path} maps no entity for label(s) {missing}; add a row `label<TAB>entity IRI` for each"
        )
    return [graph.resolve(mapping[label]) for label in labels]
