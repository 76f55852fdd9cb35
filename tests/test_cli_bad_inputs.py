"""A new user's mistakes on the `kgfuse` command line: each gets one line naming the problem
and the fix, a non-zero exit, no traceback, and nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import FIXTURES, run_cli, run_cli_in_process

LINKER_KG = FIXTURES / "linker.ttl"


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 1, one line on stderr that holds every word, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _texts(tmp_path: Path) -> Path:
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nA cough, then a runny nose\n")
    return texts


def test_cli_output_under_a_file_names_the_file(tiny_ttl: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    load = run_cli("kg", "load", str(tiny_ttl), "-o", str(blocker / "kg"))
    _refused(load, f"{blocker} is a file, not a folder")
    link = run_cli(
        "link", "--kg", str(LINKER_KG), "-i", str(_texts(tmp_path)), "-o", str(blocker / "x.jsonl")
    )
    _refused(link, f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "texts.csv"]


def test_cli_link_output_that_is_a_folder_is_refused_before_linking(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    result = run_cli("link", "--kg", str(LINKER_KG), "-i", str(_texts(tmp_path)), "-o", str(folder))
    _refused(result, f"cannot write {folder}: it is a folder")
    assert list(folder.iterdir()) == []


def test_cli_output_without_permission_says_so(
    tiny_ttl: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A read-only folder (simulated: these tests may run as root, whom chmod does not stop)."""

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    out = tmp_path / "ro" / "kg"
    assert run_cli_in_process(monkeypatch, "kg", "load", str(tiny_ttl), "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"cannot write {out}" in err and "Permission denied" in err
    assert "choose a folder you may write to" in err
    assert not (tmp_path / "ro").exists()


def test_cli_file_system_errors_end_as_one_line(
    tiny_ttl: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A full disk while a KG is saved: one line, exit 1, no traceback, no folder left."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "index.safetensors")

    monkeypatch.setattr("safetensors.numpy.save_file", full)
    out = tmp_path / "kg"
    assert run_cli_in_process(monkeypatch, "kg", "load", str(tiny_ttl), "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_train_output_that_is_a_file_is_refused_first(tmp_path: Path) -> None:
    blocker = tmp_path / "run.txt"
    blocker.write_text("")
    for output in (blocker, blocker / "run"):
        result = run_cli("train", "configs/tiny.yaml", f"output={output}")
        _refused(
            result, f"{blocker} is a file, not a folder" if output != blocker else "it is a file"
        )
    assert [p.name for p in tmp_path.iterdir()] == ["run.txt"]


def test_cli_export_checks_its_data_file_before_writing(tiny_bundle: Path, tmp_path: Path) -> None:
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("text\nInfluenza with fever\n")
    other_label = tmp_path / "other_label.csv"
    other_label.write_text("text,label\nInfluenza with fever,no such class\n")
    out = tmp_path / "exported"
    _refused(
        run_cli("export", str(tiny_bundle), "-o", str(out), "--data", str(no_label)),
        "no column 'label'",
    )
    _refused(
        run_cli("export", str(tiny_bundle), "-o", str(out), "--data", str(other_label)),
        "['no such class'] the model does not know",
    )
    assert not out.exists()


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def _said_when_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[str, str]:
    """`kgfuse ARGS` in this process must exit 130; what it printed, with each run of
    whitespace made one space, and with none (the console may wrap a long path anywhere)."""
    assert run_cli_in_process(monkeypatch, *args) == 130
    said = " ".join(capsys.readouterr().out.split())
    return said, said.replace(" ", "")


def test_cli_train_interrupted_says_what_is_left_and_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fusion.train

    monkeypatch.setattr(fusion.train, "main", _interrupt)
    out = tmp_path / "run"
    args = ("train", "configs/tiny.yaml", f"output={out}")
    said, _ = _said_when_interrupted(monkeypatch, capsys, *args)
    assert "interrupted before the first epoch ended" in said and "rerun" in said
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "state.json").write_text(json.dumps({"state": {"epoch": 2}}))
    said, squeezed = _said_when_interrupted(monkeypatch, capsys, *args)
    assert f"{out / 'checkpoint'}keepsepoch2" in squeezed
    assert "rerun the same command to resume" in said


def test_cli_train_interrupted_in_its_first_epoch_leaves_no_output_folder(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import fusion.train

    out = tmp_path / "run"
    args = ("train", "configs/tiny.yaml", f"output={out}", f"encoder.path={tiny_bert}")
    made: list[bool] = []

    def first_epoch(*args: object, **kwargs: object) -> None:
        made.append(out.is_dir())  # the run folder is there while training
        raise KeyboardInterrupt

    monkeypatch.setattr(fusion.train, "fit", first_epoch)
    said, _ = _said_when_interrupted(monkeypatch, capsys, *args)
    assert made == [True] and "interrupted before the first epoch ended" in said
    assert not out.exists()
    # a folder that was there before (a run to resume) is never removed
    (out / "checkpoint").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    _said_when_interrupted(monkeypatch, capsys, *args)
    assert (out / "notes.txt").read_text() == "mine"


def test_checkpoint_damaged_is_named_with_the_fix(tmp_path: Path) -> None:
    import torch

    from fusion.checkpoint import (
        CheckpointError,
        checkpoint_state,
        load_checkpoint,
        save_checkpoint,
    )

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, model, dict(model.state_dict()), optimizer, {"epoch": 1})
    assert checkpoint_state(folder) == {"epoch": 1}
    best = folder / "best.safetensors"
    best.write_bytes(best.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=f"cannot resume from {folder}.*delete {folder}"):
        load_checkpoint(folder, model, optimizer)
    (folder / "state.json").write_text('{"state": {"epo')
    with pytest.raises(CheckpointError, match=r"state\.json is not valid JSON.*train afresh"):
        checkpoint_state(folder)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("facts.csv", "head,relation,tail\nflu,has symptom,fever\n"),
        ("facts.tsv", "flu\thas symptom\tfever\n"),
        ("facts.nt", "<http://e/flu> <http://e/has_symptom> <http://e/fever> .\n"),
        ("facts.ttl", "@prefix e: <http://e/> .\ne:flu e:has_symptom e:fever .\n"),
    ],
)
def test_kg_load_skips_a_byte_order_mark(name: str, content: str, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" and Windows editors start a file with U+FEFF: it is no part of the
    first name, does not turn a header into a triple, and is no syntax error."""
    import kg

    plain, marked = tmp_path / name, tmp_path / "bom" / name
    marked.parent.mkdir()
    plain.write_text(content, encoding="utf-8")
    marked.write_text(content, encoding="utf-8-sig")
    graph = kg.load(marked)
    assert graph.num_triples == 1
    assert graph.fingerprint == kg.load(plain).fingerprint


def test_cli_a_folder_given_as_a_file_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "texts.csv"
    folder.mkdir()
    link = run_cli("link", "--kg", str(LINKER_KG), "-i", str(folder), "--json")
    _refused(link, f"{folder} is a folder; give the file inside it")
    train = run_cli("train", str(tmp_path))
    _refused(train, f"config file {tmp_path} is a folder, not a YAML file")


def test_label_map_rows_the_kg_or_the_data_lack_are_named(tiny_kg: object, tmp_path: Path) -> None:
    from nlp.texts import DataError, read_label_map

    wrong_iri = tmp_path / "wrong_iri.tsv"
    wrong_iri.write_text("label\tentity\nflu\thttp://example.org/tiny/nosuch\n")
    with pytest.raises(DataError, match=r"wrong_iri\.tsv: label 'flu' maps to 'http://ex"):
        read_label_map(wrong_iri, tiny_kg, ["flu"])  # type: ignore[arg-type]
    upper = tmp_path / "upper.tsv"
    upper.write_text("label\tentity\nFLU\thttp://example.org/tiny/influenza_virus\n")
    with pytest.raises(DataError, match=r"no entity for label\(s\) \['flu'\].*it maps \['FLU'\]"):
        read_label_map(upper, tiny_kg, ["flu"])  # type: ignore[arg-type]


def test_cli_jsonl_text_that_is_null_or_a_list_is_refused(tmp_path: Path) -> None:
    for value in ("null", '["a cough"]'):
        texts = tmp_path / "texts.jsonl"
        texts.write_text(f'{{"text": "a cough"}}\n{{"text": {value}}}\n')
        result = run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "--json")
        _refused(result, "texts.jsonl:2: 'text' must be a string")
        assert result.stdout == ""


def test_cli_split_refuses_a_split_that_holds_nothing_out(tiny_ttl: Path, tmp_path: Path) -> None:
    train = FIXTURES / "tiny_train.csv"
    out = tmp_path / "split"
    for fraction, word in (("0", "nothing"), ("1", "everything")):
        result = run_cli(
            "split", str(train), "--kg", str(tiny_ttl), "-o", str(out), "--fraction", fraction
        )
        _refused(result, "strictly between 0 and 1", f"{word} would be held out")
    one = tmp_path / "one.csv"
    one.write_text("text,label\nInfluenza with a fatigue,flu\n")
    _refused(
        run_cli("split", str(one), "--kg", str(tiny_ttl), "-o", str(out)),
        "held out no entity",
        "raise --fraction",
    )
    _refused(
        run_cli(
            "split", str(train), "--kg", str(tiny_ttl), "-o", str(out), "--type", "http://nosuch/T"
        ),
        "--type 'http://nosuch/T': no entity has the IRI",
    )
    assert not out.exists()
    shown = "".join(run_cli("split", "--help").stdout.split())  # the console wraps anywhere
    assert "Shareofthelinkedentitiestoholdout,between0and1." in shown
    assert "0.0<=x<=1.0" not in shown  # 0 and 1 are refused: the help must not offer them


def test_cli_tune_interrupted_says_rerunning_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fusion.tune

    monkeypatch.setattr(fusion.tune, "tune", _interrupt)
    out = tmp_path / "run"
    args = ("tune", "configs/tiny.yaml", f"output={out}")
    said, squeezed = _said_when_interrupted(monkeypatch, capsys, *args)
    assert f"interrupted:{out / 'tune'}keepsthefinishedtrials" in squeezed
    assert "rerun the same command" in said


def test_cli_train_on_an_empty_kg_says_the_kg_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.nt"
    empty.write_text("# no triples yet\n")
    out = tmp_path / "run"
    result = run_cli("train", "configs/tiny.yaml", f"kg.files=[{empty}]", f"output={out}")
    _refused(result, "the KG is empty", str(empty))
    assert not out.exists()


def test_cli_store_under_a_file_names_the_file(tiny_ttl: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    for store in (blocker, blocker / "store"):
        result = run_cli(
            "kg", "load", "--backend", "oxigraph", str(tiny_ttl), "--store", str(store)
        )
        _refused(result, "is a file, not a folder", "choose another output path")
        assert "IO error" not in result.stderr
    assert blocker.read_text() == "keep me\n"


def test_cli_store_another_process_has_open_says_so(tiny_ttl: Path, tmp_path: Path) -> None:
    import pyoxigraph

    store = tmp_path / "store"
    held = pyoxigraph.Store(str(store))  # this process holds it, as a running load would
    result = run_cli("kg", "load", "--backend", "oxigraph", str(tiny_ttl), "--store", str(store))
    _refused(result, f"cannot open the store {store}: another process has it open", "let it end")
    assert "IO error" not in result.stderr
    del held


def test_cli_compare_refuses_an_unwritable_json_report_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    out = tmp_path / "run"
    result = run_cli(
        "compare", "configs/tiny.yaml", f"output={out}", "--json", str(blocker / "report.json")
    )
    _refused(result, f"cannot write {blocker / 'report.json'}: {blocker} is a file")
    assert not out.exists()


@pytest.mark.parametrize(("text", "problem"), [("", "is empty"), (" \u200b ", "is empty")])
def test_cli_link_refuses_an_empty_text_argument_as_predict_does(text: str, problem: str) -> None:
    _refused(run_cli("link", text, "--kg", str(LINKER_KG)), "TEXT argument", problem)
