"""SIGTERM or SIGHUP to a `kgfuse` command: its cleanup runs as for Ctrl-C, then it ends by that
signal. Without this, the default action kills the process on the spot, past every `finally`:
the temporary folder of a half-written output stays, and no resume hint prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kg.stop_signals import raising_on_stop_signals

from .conftest import REPO
from .test_predict_file import write_texts

# `kgfuse ARGS` in which the CALLS-th call of OWNER.NAME (OWNER: a module, or module:Class),
# once it has returned, sends SIGNAL to its own process: a signal at a known point, mid-way.
STOPPED_RUN = """
import importlib, os, sys
owner, name, calls, signum, *args = sys.argv[1:]
module, _, cls = owner.partition(":")
target = importlib.import_module(module)
target = getattr(target, cls) if cls else target
real = getattr(target, name)
left = [int(calls)]
def then_stop(*a, **k):
    result = real(*a, **k)
    left[0] -= 1
    if left[0] == 0:
        os.kill(os.getpid(), int(signum))
    return result
setattr(target, name, then_stop)
import signal
signal.signal(int(signum), signal.SIG_DFL)  # as from a terminal, even under a nohup'd runner
sys.argv = ["kgfuse", *args]
from api.cli import main
main()
"""


def _run_stopped(
    tmp_path: Path, owner: str, name: str, calls: int, signum: int, *args: str
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "stopped_run.py"
    script.write_text(STOPPED_RUN)
    env = dict(os.environ, COLUMNS="400", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, str(script), owner, name, str(calls), str(signum), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_kg_load_leaves_no_temporary_folder_and_ends_by_the_signal(
    tiny_ttl: Path, tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "out" / "compiled"
    # the index is written into the temporary folder, then the signal comes
    stopped = _run_stopped(
        tmp_path,
        "safetensors.numpy",
        "save_file",
        1,
        signum,
        "kg",
        "load",
        str(tiny_ttl),
        "-o",
        str(out),
    )
    assert stopped.returncode == -signum, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert list((tmp_path / "out").iterdir()) == []  # neither the folder nor its temporary one


def test_a_stopped_predict_keeps_its_part_file_and_says_how_to_resume(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    from fusion.predict_file import BATCH

    texts = write_texts(tmp_path / "texts.txt", 2 * BATCH + 20)
    out = tmp_path / "pred.jsonl"
    # the second batch is predicted once the first one's answers are written; then SIGTERM
    stopped = _run_stopped(
        tmp_path,
        "fusion.predict:Predictor",
        "predict",
        2,
        signal.SIGTERM,
        "predict",
        str(tiny_bundle),
        "-i",
        str(texts),
        "-o",
        str(out),
        "--no-progress",
    )
    assert stopped.returncode == -signal.SIGTERM, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "rerun to resume" in stopped.stdout
    part = out.with_name(out.name + ".part")
    assert not out.exists() and len(part.read_text().splitlines()) == BATCH


def test_an_ignored_signal_stays_ignored_and_handlers_come_back() -> None:
    before = signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # as `nohup` ignores SIGHUP
    try:
        with raising_on_stop_signals(lambda signum: KeyboardInterrupt()) as received:
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGUSR1)  # ignored: nothing raised
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGUSR2)
                signal.sigtimedwait([], 0)  # a bytecode boundary for the handler to run at
            # during the cleanup, a second signal is ignored
            assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGUSR2)
        assert received == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, before)
