"""One `kgfuse train` per output folder: a second one is refused with the fix, and never removes
or writes into the folder the first one is writing; a killed run leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.train import _run_folder
from kg.errors import OutputError
from kg.folder_lock import LOCK_FILE, folder_lock

from .conftest import REPO, run_cli

HOLD = """
import sys, time
from pathlib import Path
from kg.folder_lock import folder_lock
with folder_lock(Path(sys.argv[1]), "a test", "wait"):
    print("held", flush=True)
    time.sleep(300)
"""

IN_USE = "in use by another kgfuse run writing it"


def test_a_second_holder_is_refused_with_the_first_ones_process_and_the_fix(
    tmp_path: Path,
) -> None:
    with folder_lock(tmp_path, "another kgfuse run", "wait for it"):
        with (
            pytest.raises(OutputError) as refused,
            folder_lock(tmp_path, "another kgfuse run", "wait for it"),
        ):
            pass
        assert str(refused.value) == (
            f"{tmp_path} is in use by another kgfuse run (process {os.getpid()}); wait for it"
        )
    with folder_lock(tmp_path, "another kgfuse run", "wait for it"):  # released: free again
        pass


def test_a_killed_holder_leaves_the_folder_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with (
            pytest.raises(OutputError, match=f"process {holder.pid}"),
            folder_lock(tmp_path, "a test", "wait"),
        ):
            pass
        holder.send_signal(signal.SIGKILL)  # no cleanup of any kind runs
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert (tmp_path / LOCK_FILE).exists()
    with folder_lock(tmp_path, "a test", "wait"):  # the file stays; its lock went with it
        pass


def _run_folder_with_an_epoch(tmp_path: Path) -> Path:
    """A run folder as another run leaves it after its first epoch."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return run


def test_train_into_a_folder_another_run_is_writing_is_refused_before_its_set_up(
    tmp_path: Path,
) -> None:
    run = _run_folder_with_an_epoch(tmp_path)
    with folder_lock(run, "another kgfuse run writing it", "wait"):
        refused = run_cli("train", "configs/tiny.yaml", f"output={run}", "encoder.path=/nowhere")
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    # the refusal comes first: the missing encoder, read during set-up, is not reached
    assert f"{run} is in use by another kgfuse run writing it (process " in refused.stderr
    assert "output=FOLDER" in refused.stderr
    assert [p.name for p in run.iterdir()] == ["metrics.jsonl"]  # as it was


def test_a_run_that_loses_the_race_for_a_new_folder_leaves_it_to_the_winner(
    tmp_path: Path,
) -> None:
    # both runs found no folder and finished their set-up; the first one made it and writes
    run = _run_folder_with_an_epoch(tmp_path)
    with folder_lock(run, "another kgfuse run writing it", "wait"):
        with pytest.raises(OutputError, match=IN_USE), _run_folder(run, removable=True):
            raise AssertionError("the second run must not start")
        assert (run / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


def test_a_run_stopped_before_its_first_checkpoint_removes_the_folder_it_made(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), _run_folder(run, removable=True):
        assert (run / LOCK_FILE).is_file()
        raise KeyboardInterrupt
    assert not run.exists()
    with pytest.raises(KeyboardInterrupt), _run_folder(run, removable=True):
        (run / "checkpoint").mkdir()
        (run / "checkpoint" / "state.json").write_text("{}")
        raise KeyboardInterrupt
    assert (run / "checkpoint" / "state.json").is_file()  # resumable: kept
    assert not (run / LOCK_FILE).exists()
    with _run_folder(run, removable=True):  # a run that ends well leaves no lock file
        assert (run / LOCK_FILE).is_file()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]


def test_a_lock_file_removed_by_its_last_holder_meanwhile_is_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kg.folder_lock

    real = kg.folder_lock.fcntl.flock
    calls: list[int] = []

    def flock_after_removal(fd: int, operation: int) -> None:
        calls.append(fd)
        if len(calls) == 1:  # the last holder ended between our open and our flock
            (tmp_path / LOCK_FILE).unlink()
        real(fd, operation)

    monkeypatch.setattr(kg.folder_lock.fcntl, "flock", flock_after_removal)
    with folder_lock(tmp_path, "a test", "wait"):
        assert len(calls) == 2  # the removed file's lock was let go, the new file's taken
        monkeypatch.setattr(kg.folder_lock.fcntl, "flock", real)
        with (
            pytest.raises(OutputError, match="in use by a test"),
            folder_lock(tmp_path, "a test", "w"),
        ):
            pass
