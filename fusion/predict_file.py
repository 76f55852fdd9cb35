"""``kgfuse predict BUNDLE -i INPUT -o OUT``: a large file, streamed, and resumed when interrupted.

The input is read one row at a time and the predictions are appended to ``OUT.part`` as they
are made, so memory holds one batch, whatever the file's size. ``OUT`` itself appears only when
every text has its line (``OUT.part`` is renamed to it), so a file named ``OUT`` is always
complete. Beside it, ``OUT.run.json`` records what the lines are predictions of: the input's
and the bundle's SHA-256 and the options that change a line. Rerunning the same command after
an interruption keeps the complete lines of ``OUT.part`` (a last line cut short is dropped and
redone) and continues with the next text; the result is byte for byte that of an uninterrupted
run. Another input, bundle or option is refused, naming what differs, unless ``overwrite``.

Resuming restarts at the first text of the batch that was cut (at most ``BATCH - 1`` complete
lines are made again): a text's probabilities depend, in their last bits, on the texts padded
and bucketed with it, so only the same batches give the same bytes. Lines carry no timings for
the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kg.files import make_folder, read_json, write_json
from kg.folder_lock import output_lock
from nlp.texts import (
    DataError,
    check_header,
    check_json_value,
    check_width,
    delimited_rows,
    no_rows,
    not_utf8,
    other_delimiter,
    text_format,
    text_problem,
    unique_keys,
)

if TYPE_CHECKING:
    from fusion.predict import Predictor
    from fusion.prediction import Prediction

BATCH = 64  # texts per model call
RUN_SUFFIX = ".run.json"
PART_SUFFIX = ".part"


def iter_texts(path: Path, column: str = "text") -> Iterator[str]:
    """The texts of a CSV, TSV, JSONL or TXT file, read lazily (one row in memory at a time).

    An empty field is yielded as "": `answers` gives it an error line in its place.

    Raises:
        DataError: an unknown extension, a missing or non-UTF-8 file, a malformed row, or no
            such column, naming the file and the line.
    """
    kind = text_format(path)
    rows = {"txt": _txt_rows, "jsonl": _jsonl_rows}.get(kind, _delimited_rows)
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            for _, row in rows(path, f, "\t" if kind == "tsv" else ",", column):
                yield row.get(column) or ""  # an empty text is its own failure (`answers`)
        except UnicodeDecodeError as e:
            raise not_utf8(path) from e


Rows = Iterator[tuple[int, dict[str, str]]]


def _txt_rows(path: Path, f: Any, delimiter: str, column: str) -> Rows:
    for n, line in enumerate(f, 1):
        line = line.rstrip("\r\n")
        if line.strip():
            yield n, {"text": line}


def _jsonl_rows(path: Path, f: Any, delimiter: str, column: str) -> Rows:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=unique_keys)
        except (ValueError, RecursionError) as e:
            raise DataError(f"{path}:{n}: invalid JSON ({getattr(e, 'msg', e)})") from e
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: each line must be a JSON object")
        if column not in record:
            raise DataError(
                f"{path}:{n}: no key {column!r}; the keys are {list(record)}: name the one to "
                "read with --text-column"
            )
        value = record[column]
        check_json_value(path, n, column, value)
        yield n, {column: value if isinstance(value, str) else json.dumps(value)}


def _delimited_rows(path: Path, f: Any, delimiter: str, column: str) -> Rows:
    index, header = None, []
    for start, row in delimited_rows(path, f, delimiter):
        if index is None:
            check_header(path, start, row)
            kind = "tsv" if delimiter == "\t" else "csv"
            if column not in row and (other := other_delimiter(row, kind)):
                raise DataError(f"{path}: no column {column!r}; {other}")
            if column not in row:
                raise DataError(
                    f"{path}: no column {column!r}; the columns are {row}: name the one to read "
                    "with --text-column"
                )
            index, header = row.index(column), row
            continue
        check_width(path, start, row, header, delimiter)
        yield start, {column: row[index] if index < len(row) else ""}
    if index is None:
        raise DataError(f"{path}: the file is empty; it needs a header row with {column!r}")


def scan(path: Path, column: str, max_chars: int | None = None) -> tuple[int, str, list[int]]:
    """Read the whole file before a model loads: how many texts it holds, its SHA-256, and the
    numbers (from 1) of the texts that cannot be classified (empty, not valid Unicode, or over
    ``max_chars``), which get an error line in their place. Raises `DataError` for a file that
    cannot be read as texts, naming it and the line."""
    total, failing = 0, []
    for total, text in enumerate(iter_texts(path, column), 1):
        if text_problem(text, max_chars):
            failing.append(total)
    if not total:
        raise no_rows(path)
    return total, _sha256(path), failing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_record(
    bundle: Path, data: Path, column: str, paths: bool, input_sha256: str, texts: int
) -> dict[str, Any]:
    """What an output's lines are predictions of (``OUT.run.json``)."""
    return {
        "input": str(data),
        "input_sha256": input_sha256,
        "texts": texts,
        "bundle": str(bundle),
        "bundle_sha256": _sha256(bundle / "bundle.json"),  # it lists every file's SHA-256
        "text_column": column,
        "paths": paths,
        "batch": BATCH,
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    what = {
        "input_sha256": f"the input ({old.get('input')}, other content)",
        "bundle_sha256": f"the bundle ({old.get('bundle')}, other files)",
        "text_column": f"--text-column {old.get('text_column')!r}",
        "paths": f"--paths {'on' if old.get('paths') else 'off'}",
        "batch": f"batches of {old.get('batch')} texts (another kgfuse version)",
    }
    return [text for key, text in what.items() if old.get(key) != new[key]]


def _complete_batches(part: Path) -> int:
    """Keep the lines of ``part``'s complete batches (a last line without its newline was cut
    short by an interruption; the lines of a batch cut short are made again); return how many
    lines are kept."""
    keep = offset = kept_at = 0
    with part.open("rb+") as f:
        for line in f:  # one line at a time: the file may be large
            if not line.endswith(b"\n"):
                break
            keep, offset = keep + 1, offset + len(line)
            if keep % BATCH == 0:
                kept_at = offset
        keep -= keep % BATCH
        f.truncate(kept_at)
    return keep


def predictions_lock(output: Path) -> AbstractContextManager[None]:
    """Hold ``output``'s lock (`kg.folder_lock.output_lock` on ``.OUT.lock`` beside it) while
    its predictions are written: a second `kgfuse predict -o OUT` meanwhile is refused, not
    appended to the same ``OUT.part``. Makes the folder of ``output``."""
    make_folder(output.parent)
    return output_lock(
        output.with_name(f".{output.name}.lock"),
        output,
        "another kgfuse predict writing it",
        "wait for it to end (this command then finds its answers, or resumes), or choose "
        "another -o",
    )


def start_or_resume(output: Path, run: dict[str, Any], overwrite: bool) -> int | None:
    """How many texts of ``run`` are already in ``OUT.part`` (0: a fresh start), or None when
    ``output`` already holds them all.

    Raises:
        DataError: ``output`` (or its run record) belongs to another input, bundle or options,
            or has no run record; naming the difference and the fix (``--overwrite``).
    """
    part = output.with_name(output.name + PART_SUFFIX)
    record = output.with_name(output.name + RUN_SUFFIX)
    existing = [p for p in (output, part, record) if p.exists()]
    if existing and not overwrite:
        fix = f"choose another -o, or pass --overwrite to replace {output}"
        if not record.is_file():
            raise DataError(f"{existing[0]} exists and was not written by `kgfuse predict`; {fix}")
        old = read_json(record, DataError, fix)
        differs = _differences(old if isinstance(old, dict) else {}, run)
        if differs:
            raise DataError(
                f"{output} holds predictions made with {' and '.join(differs)}, not this "
                f"command's; {fix}"
            )
        if output.is_file() and not part.exists():
            return None
    elif existing:
        for p in existing:
            p.unlink()
    make_folder(output.parent)
    write_json(record, run)
    if not part.exists():
        part.touch()
        return 0
    done = _complete_batches(part)
    if done > run["texts"]:
        raise DataError(
            f"{part} holds {done} lines but the input has {run['texts']} texts; pass --overwrite"
        )
    return done


@dataclass(frozen=True)
class TextFailure:
    """A text of the file that cannot be classified, answered in its place by an error line,
    as the service answers a bad text of a batch: the others are predicted."""

    number: int  # the text's position in the file, from 1
    text: str
    code: str  # "empty_text", "invalid_text" or "text_too_long", as the service answers
    message: str  # "text N is empty ...", with the fix

    def json_line(self) -> str:
        shown = self.text.encode("utf-8", "backslashreplace").decode("utf-8")
        error = {"code": self.code, "message": self.message}
        return json.dumps({"text": shown, "label": None, "error": error}, ensure_ascii=False) + "\n"


def answers(
    predictor: Predictor, texts: Iterator[str], paths: bool, first: int = 1
) -> Iterator[Prediction | TextFailure]:
    """One answer per text, in order, made ``BATCH`` texts at a time as they come: a
    `Prediction`, or a `TextFailure` for a text that cannot be classified. ``first`` is the
    number of the first text (batches keep their place in the file when a run resumes)."""
    while batch := list(islice(texts, BATCH)):
        problems = [text_problem(text, predictor.max_chars) for text in batch]
        good = [text for text, problem in zip(batch, problems, strict=True) if problem is None]
        found = iter(predictor.predict(good, explain_paths=paths))
        for i, (text, problem) in enumerate(zip(batch, problems, strict=True)):
            if problem is None:
                yield next(found)
            else:
                number = first + i
                message = f"text {number} {problem.message}"
                yield TextFailure(number, text, problem.code, message)
        first += len(batch)


def predict_file(
    predictor: Predictor,
    data: Path,
    output: Path,
    run: dict[str, Any],
    done: int,
    progress: bool = True,
) -> int:
    """Append the predictions of the texts after the first ``done`` (`start_or_resume`) to
    ``OUT.part``, a batch at a time, then rename it to ``output``. Returns how many texts this
    call predicted."""
    from tqdm import tqdm

    part = output.with_name(output.name + PART_SUFFIX)
    texts = islice(iter_texts(data, run["text_column"]), done, None)
    bar = tqdm(total=run["texts"], initial=done, unit="text", disable=not progress, smoothing=0.1)
    with part.open("a", encoding="utf-8") as out, bar:
        batches = answers(predictor, texts, run["paths"], first=done + 1)
        while batch := list(islice(batches, BATCH)):
            out.write("".join(answer.json_line() for answer in batch))
            out.flush()  # a kill loses at most the batch being written
            bar.update(len(batch))
        os.fsync(out.fileno())
    part.replace(output)
    return run["texts"] - done
