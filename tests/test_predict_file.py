"""`kgfuse predict -i FILE -o OUT`: streamed, resumed after an interruption, never mixed up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.predict_file import (
    BATCH,
    iter_texts,
    scan,
    start_or_resume,
)
from nlp.texts import DataError

from .conftest import REPO, run_cli

WORDS = ["fever", "cough", "cold", "flu", "joint pain", "skin rash", "influenza", "sneezing"]


def write_texts(path: Path, n: int, offset: int = 0) -> Path:
    lines = [f"text {i}: my {WORDS[(i + offset) % len(WORDS)]} and a runny nose" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


INTERRUPTED_RUN = """
import sys
from pathlib import Path
from fusion.predict import Predictor
from fusion.predict_file import predict_file, run_record, scan, start_or_resume

bundle, texts, out, batches = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
predictor = Predictor.from_dir(bundle)
predict = predictor.predict

def stopping(batch, explain_paths=False):  # Ctrl-C when batch number `batches` starts
    global batches
    if batches == 0:
        raise KeyboardInterrupt
    batches -= 1
    return predict(batch, explain_paths=explain_paths)

predictor.predict = stopping
total, digest, _ = scan(texts, "text")
run = run_record(bundle, texts, "text", False, digest, total)
predict_file(predictor, texts, out, run, start_or_resume(out, run, False), progress=False)
"""


def test_predict_file_resumed_after_an_interruption_equals_an_uninterrupted_run(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    texts = write_texts(tmp_path / "texts.txt", 2 * BATCH + 20)
    whole = tmp_path / "whole.jsonl"
    first = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(whole))
    assert first.returncode == 0, first.stderr

    out = tmp_path / "resumed.jsonl"
    script = tmp_path / "interrupted_run.py"
    script.write_text(INTERRUPTED_RUN)  # in its own process, with the CLI's torch threads
    args = [str(tiny_bundle), str(texts), str(out), "2"]
    stopped = subprocess.run([sys.executable, str(script), *args], cwd=REPO, capture_output=True)
    assert stopped.returncode != 0 and b"KeyboardInterrupt" in stopped.stderr
    part = out.with_name(out.name + ".part")
    assert not out.exists() and len(part.read_text().splitlines()) == 2 * BATCH
    with part.open("a") as f:  # the kill came while a line was being written
        f.write('{"text": "text 128: my fever')

    resumed = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{2 * BATCH} of {2 * BATCH + 20} predictions kept" in resumed.stdout
    assert out.read_bytes() == whole.read_bytes()
    assert not part.exists()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == list(iter_texts(texts))
    again = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert again.returncode == 0 and "already holds the 148 answers" in again.stdout


def test_predict_file_refuses_an_output_of_another_input_until_overwrite(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.jsonl"
    first = write_texts(tmp_path / "first.txt", 5)
    assert run_cli("predict", str(tiny_bundle), "-i", str(first), "-o", str(out)).returncode == 0
    other = write_texts(tmp_path / "other.txt", 5, offset=3)

    refused = run_cli("predict", str(tiny_bundle), "-i", str(other), "-o", str(out))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "the input" in refused.stderr and "--overwrite" in refused.stderr
    assert [json.loads(x)["text"] for x in out.read_text().splitlines()] == list(iter_texts(first))

    with_paths = run_cli("predict", str(tiny_bundle), "-i", str(first), "-o", str(out), "--paths")
    assert with_paths.returncode == 1 and "--paths off" in with_paths.stderr

    replaced = run_cli("predict", str(tiny_bundle), "-i", str(other), "-o", str(out), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert [json.loads(x)["text"] for x in out.read_text().splitlines()] == list(iter_texts(other))


def test_predict_file_refuses_an_output_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text("my own notes\n")
    texts = write_texts(tmp_path / "texts.txt", 3)
    run = {"input_sha256": "x", "bundle_sha256": "y", "text_column": "text", "paths": False}
    with pytest.raises(DataError, match=r"not written by `kgfuse predict`.*--overwrite"):
        start_or_resume(out, {**run, "batch": BATCH, "texts": 3}, overwrite=False)
    assert out.read_text() == "my own notes\n"
    assert len(list(iter_texts(texts))) == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.csv",
            "body,label\nhello,x\n",
            "no column 'text'; the columns are ['body', 'label']: name the one to read with "
            "--text-column",
        ),
        ("a.jsonl", '{"text": "hi"}\n[1]\n', "a.jsonl:2: each line must be a JSON object"),
        ("b.jsonl", '{"body": "hi"}\n', "no key 'text'; the keys are ['body']: name the one"),
        ("a.pdf", "", "cannot read .pdf files"),
    ],
)
def test_predict_file_scan_names_the_bad_row(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scan(path, "text")


def test_predict_file_answers_every_text_and_gives_a_bad_one_an_error_line_in_its_place(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.csv"
    rows = ["my fever and a cough", "", "influenza again", " \u200b ", "a skin rash"]
    texts.write_text("text\n" + "\n".join(f'"{r}"' for r in rows) + "\n", encoding="utf-8")
    assert scan(texts, "text")[0::2] == (5, [2, 4])
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = " ".join(result.stderr.split())
    assert "2 of 5 texts could not be classified (text 2, 4:" in said and "every other" in said
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == rows
    assert [r["label"] is None for r in records] == [False, True, False, True, False]
    assert records[1]["error"]["code"] == "empty_text"  # the service's code for it
    assert records[3]["error"]["message"].startswith("text 4 is empty")
    again = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert again.returncode == 1 and "already holds the 5 answers" in again.stdout
    assert "text 2, 4" in " ".join(again.stderr.split())  # a rerun does not hide them
    alone = run_cli("predict", str(tiny_bundle), *rows[::2], "--json")
    assert [json.loads(x)["label"] for x in alone.stdout.splitlines()] == [
        r["label"] for r in records[::2]
    ]


def test_a_second_predict_into_the_same_output_is_refused_while_the_first_writes(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    import os

    from fusion.predict_file import predictions_lock

    texts = write_texts(tmp_path / "texts.txt", 5)
    out = tmp_path / "pred.jsonl"
    with predictions_lock(out):  # the first one, writing
        refused = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert f"{out} is in use by another kgfuse predict writing it (process {os.getpid()})" in (
        " ".join(refused.stderr.split())
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]  # nothing appended
    done = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pred.jsonl",
        "pred.jsonl.run.json",
        "texts.txt",
    ]  # and no lock file left
