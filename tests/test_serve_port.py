"""`kgfuse serve` and `kgfuse demo` on a port another program holds: one line naming the port
and the fix, exit 1, before the model is loaded or the demo trains (uvicorn's own answer came
after both, as a log line and exit 3)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import api.demo
import api.serve
from tests.conftest import run_cli_in_process


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _never(what: str) -> object:
    def called(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} before the port was checked")

    return called


def test_serve_on_a_port_in_use_is_one_line_before_loading(
    tiny_bundle: Path,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(api.serve, "load_engine", _never("the bundle was loaded"))
    monkeypatch.setenv("COLUMNS", "400")
    code = run_cli_in_process(monkeypatch, "serve", str(tiny_bundle), "--port", str(busy_port))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines == [
        f"error: port {busy_port} on 127.0.0.1 is in use by another program; pass another "
        f"--port (e.g. --port {busy_port + 1}) or stop that program"
    ]


def test_demo_on_a_port_in_use_stops_before_training(
    tmp_path: Path,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(api.demo, "train_both", _never("the demo trained"))
    monkeypatch.setenv("COLUMNS", "400")
    out = tmp_path / "demo"
    code = run_cli_in_process(monkeypatch, "demo", "-o", str(out), "--port", str(busy_port))
    err = capsys.readouterr().err
    assert code == 1
    assert f"port {busy_port} on 127.0.0.1 is in use by another program" in err
    assert not out.exists()


def test_a_free_port_passes_the_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api.serve.check_port("127.0.0.1", port)  # no error: nothing listens there
