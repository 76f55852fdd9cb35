"""Encrypted bundles (fusion/bundle_crypto.py): `kgfuse bundle keygen/encrypt/decrypt` round-trip
a bundle, every change to the file (a flipped byte, a cut, an appended or swapped chunk) and a
wrong key is one line naming the fix with nothing written, and `kgfuse serve BUNDLE.kgfe`
answers like the plain bundle while leaving no plaintext file behind."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics import Metrics
from api.serve import load_engine
from api.settings import ServeSettings
from fusion import bundle_crypto
from fusion.bundle_crypto import (
    HEADER_SIZE,
    KEY_ENV,
    TAG,
    BundleCryptoError,
    decrypt_bundle,
    encrypt_bundle,
    read_key,
    write_key,
)
from tests.conftest import REPO, run_cli, run_cli_in_process

TEXT = "a bad case of influenza"
CHUNK = 4096  # small chunks, so the tiny bundle spans many


def kgfuse(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv(KEY_ENV, raising=False)
    return run_cli_in_process(monkeypatch, *args)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.key"
    write_key(path)
    return path


@pytest.fixture
def sealed(tiny_bundle: Path, key_file: Path, tmp_path: Path) -> Path:
    out = tmp_path / "tiny.kgfe"
    encrypt_bundle(tiny_bundle, out, read_key(key_file), chunk_size=CHUNK)
    return out


def _manifest(folder: Path) -> dict[str, str]:
    files: dict[str, str] = json.loads((folder / "bundle.json").read_text())["files"]
    return files


def test_bundle_crypto_round_trip_through_the_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tiny_bundle: Path,
    tmp_path: Path,
) -> None:
    key = tmp_path / "k"
    assert kgfuse(monkeypatch, "bundle", "keygen", "-o", str(key)) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(base64.b64decode(key.read_text().strip())) == 32
    enc, out = tmp_path / "b.kgfe", tmp_path / "plain"
    assert (
        kgfuse(
            monkeypatch,
            "bundle",
            "encrypt",
            str(tiny_bundle),
            "-o",
            str(enc),
            "--key-file",
            str(key),
        )
        == 0
    )
    raw = enc.read_bytes()
    assert b"bundle.json" not in raw and b"model.safetensors" not in raw  # names are sealed too
    assert (
        kgfuse(monkeypatch, "bundle", "decrypt", str(enc), "-o", str(out), "--key-file", str(key))
        == 0
    )
    assert kgfuse(monkeypatch, "bundle", "verify", str(out)) == 0
    assert _manifest(out) == _manifest(tiny_bundle)
    assert (out / "bundle.json").read_bytes() == (tiny_bundle / "bundle.json").read_bytes()
    capsys.readouterr()
    # the key from the environment; an existing output is refused, then replaced with --force
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv(KEY_ENV, key.read_text())
    assert run_cli_in_process(monkeypatch, "bundle", "decrypt", str(enc), "-o", str(out)) == 1
    assert f"{out} exists; choose another output or pass --force" in capsys.readouterr().err
    assert (
        run_cli_in_process(monkeypatch, "bundle", "decrypt", str(enc), "-o", str(out), "--force")
        == 0
    )
    assert _manifest(out) == _manifest(tiny_bundle)


def test_bundle_crypto_keys_from_file_and_environment(key_file: Path, tmp_path: Path) -> None:
    key = read_key(key_file, {})
    assert read_key(None, {KEY_ENV: key_file.read_text()}) == key
    assert read_key(key_file, {KEY_ENV: base64.b64encode(b"x" * 32).decode()}) == key  # file wins
    with pytest.raises(
        BundleCryptoError, match=f"no bundle key given: pass --key-file KEYFILE or set {KEY_ENV}"
    ):
        read_key(None, {})
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(BundleCryptoError, match=f"the bundle key in {KEY_ENV} is 16 bytes, not 32"):
        read_key(None, {KEY_ENV: short})
    with pytest.raises(BundleCryptoError, match=f"the bundle key in {KEY_ENV} is not base64"):
        read_key(None, {KEY_ENV: "not a key!"})
    with pytest.raises(BundleCryptoError, match="cannot read the key file"):
        read_key(tmp_path / "missing.key", {})
    with pytest.raises(
        BundleCryptoError, match=f"{key_file} exists; choose another output or pass --force"
    ):
        write_key(key_file)
    write_key(key_file, force=True)
    assert read_key(key_file, {}) != key and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def _refused(
    sealed: Path, data: bytes, key: bytes, tmp_path: Path, match: str, case: str = ""
) -> None:
    """``data`` in place of ``sealed`` is refused with ``match`` and writes nothing."""
    bad = tmp_path / "bad.kgfe"
    bad.write_bytes(data)
    out = tmp_path / "out"
    with pytest.raises(BundleCryptoError, match=match):
        decrypt_bundle(bad, out, key)
        pytest.fail(f"{case}: decrypted")
    assert (
        not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    )


def test_bundle_crypto_detects_every_change_to_the_file(
    sealed: Path, key_file: Path, tmp_path: Path
) -> None:
    key, data = read_key(key_file, {}), sealed.read_bytes()
    size = CHUNK + TAG
    body = data[HEADER_SIZE:]
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    assert len(chunks) > 3

    def flipped(at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]

    damaged = "is damaged or was modified"
    cases = {
        "header": (flipped(30), "its header is damaged or was modified"),  # in the salt
        "body": (flipped(HEADER_SIZE + size + 7), f"{damaged} \\(chunk 1 fails"),
        "tag": (flipped(HEADER_SIZE + size - 1), f"{damaged} \\(chunk 0 fails"),
        "last tag": (flipped(len(data) - 1), damaged),
        "cut inside a chunk": (data[:-100], damaged),
        "cut at a chunk boundary": (
            data[: HEADER_SIZE + 2 * size],
            f"{damaged} \\(it is truncated",
        ),
        "appended chunk": (data + chunks[1], damaged),
        "appended byte": (data + b"\0", damaged),
        "swapped chunks": (
            data[:HEADER_SIZE] + chunks[1] + chunks[0] + b"".join(chunks[2:]),
            f"{damaged} \\(chunk 0 fails",
        ),
        "header only": (data[:HEADER_SIZE], f"{damaged} \\(it is truncated"),
        "cut header": (data[:20], "truncated inside its header"),
    }
    for name, (bad, match) in cases.items():
        _refused(sealed, bad, key, tmp_path, match, name)
    other = base64.b64decode(bundle_crypto.generate_key())
    _refused(
        sealed,
        data,
        other,
        tmp_path,
        f"wrong key for .*: it was encrypted with key id {bundle_crypto.key_id(key).hex()}",
    )
    _refused(sealed, b"PK\3\4 a zip file", key, tmp_path, "is not an encrypted bundle")


def test_bundle_crypto_cli_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_file: Path,
    tiny_bundle: Path,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.key"
    write_key(other)
    bad_key = tmp_path / "bad.key"
    bad_key.write_text(base64.b64encode(b"k" * 31).decode())
    kf = ["--key-file", str(key_file)]
    cases = [
        (
            ["decrypt", str(sealed), "-o", str(tmp_path / "o"), "--key-file", str(other)],
            "wrong key for",
        ),
        (
            ["decrypt", str(sealed), "-o", str(tmp_path / "o"), "--key-file", str(bad_key)],
            "is 31 bytes, not 32",
        ),
        (["decrypt", str(sealed), "-o", str(tmp_path / "o")], "no bundle key given"),
        (
            ["decrypt", str(tiny_bundle), "-o", str(tmp_path / "o"), *kf],
            "is not an encrypted bundle",
        ),
        (
            ["encrypt", str(tmp_path), "-o", str(tmp_path / "x.kgfe"), *kf],
            "is not a bundle folder (no bundle.json)",
        ),
        (
            ["encrypt", str(sealed), "-o", str(tmp_path / "x.kgfe"), *kf],
            "is already an encrypted bundle",
        ),
        (
            ["encrypt", str(tiny_bundle), "-o", str(sealed), *kf],
            "exists; choose another output or pass --force",
        ),
        (["keygen", "-o", str(key_file)], "exists; choose another output or pass --force"),
        (["keygen", "-o", str(key_file / "k")], f"cannot write {key_file / 'k'}: "),
        (["encrypt", str(tiny_bundle), "-o", str(key_file / "x.kgfe"), *kf], "cannot write"),
    ]
    for args, message in cases:
        code = kgfuse(monkeypatch, "bundle", *args)
        lines = capsys.readouterr().err.splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0], (args, lines)
        assert lines[0].count("cannot write") <= 1, lines  # named once, not once per layer
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.kgfe").exists()
    r = run_cli(
        "bundle", "decrypt", str(sealed), "-o", str(tmp_path / "o"), "--key-file", str(other)
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr and "wrong key for" in r.stderr


def _plaintext_folders() -> set[Path]:
    return set(Path(bundle_crypto.tempfile.gettempdir()).glob("kgfuse-bundle-*")) | set(
        (bundle_crypto.private_tmp_root() or Path("/nonexistent")).glob("kgfuse-bundle-*")
    )


def test_bundle_crypto_service_answers_like_the_plain_bundle(
    sealed: Path, key_file: Path, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _plaintext_folders()
    made: list[Path] = []
    mkdtemp = bundle_crypto.tempfile.mkdtemp

    def recorded(**kwargs: str | None) -> str:  # the folder each load decrypts into
        made.append(Path(mkdtemp(**kwargs)))
        return str(made[-1])

    monkeypatch.setattr(bundle_crypto.tempfile, "mkdtemp", recorded)
    hot = tmp_path / "hot"
    answers = []
    for bundle, key in ((tiny_bundle, None), (sealed, key_file)):
        settings = ServeSettings(bundle=bundle, bundle_key_file=key, hot_triples_dir=hot)
        engine = load_engine(settings, Metrics())
        assert engine.settings.bundle == bundle
        with TestClient(create_app(settings, engine)) as client:
            r = client.post("/v1/predict", json={"texts": [TEXT], "explain": True})
            assert r.status_code == 200, r.text
            answers.append([{**p, "timings_ms": None} for p in r.json()["predictions"]])
    assert answers[0] == answers[1]
    assert len(made) == 1 and not made[0].exists() and _plaintext_folders() <= before
    if bundle_crypto.private_tmp_root() is not None:
        assert made[0].parent == Path("/dev/shm")

    # a load that fails, or is stopped by SIGTERM, on the way still removes the plaintext
    def boom(*args: object) -> None:
        raise RuntimeError("load failed")

    def terminated(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        pytest.fail("SIGTERM did not stop the load")

    encrypted = ServeSettings(bundle=sealed, bundle_key_file=key_file, hot_triples_dir=hot)
    monkeypatch.setattr("api.engine.Engine.load", boom)
    with pytest.raises(RuntimeError, match="load failed"):
        load_engine(encrypted, Metrics())
    monkeypatch.setattr("api.engine.Engine.load", terminated)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        load_engine(encrypted, Metrics())
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == handler  # put back for uvicorn
    assert len(made) == 3 and not any(folder.exists() for folder in made)


# Run by the test below in a child process: the old code died of the signal there.
_LOAD_STOPPED_BY_SIGNAL = """
import os, signal, sys, time, types
from pathlib import Path
import fusion.bundle_crypto as bundle_crypto
from api.metrics import Metrics
from api.serve import load_engine
from api.settings import ServeSettings

made = bundle_crypto.tempfile.mkdtemp
def recorded(**kwargs):  # the folder the load decrypts into
    folder = made(**kwargs)
    print(folder, flush=True)
    return folder
bundle_crypto.tempfile.mkdtemp = recorded

def load(*args):  # the signal comes while the plaintext lies in the folder
    os.kill(os.getpid(), signum)
    time.sleep(0.5)
    return types.SimpleNamespace()
signum = getattr(signal, sys.argv[4])
# ignored as under nohup, or at its default as from a terminal, whatever the test runner's is
signal.signal(signum, signal.SIG_IGN if sys.argv[5] == "ignored" else signal.SIG_DFL)
import api.engine
api.engine.Engine.load = load
bundle, key, hot = map(Path, sys.argv[1:4])
load_engine(ServeSettings(bundle=bundle, bundle_key_file=key, hot_triples_dir=hot), Metrics())
print("loaded", flush=True)
"""


@pytest.mark.parametrize("name", ["SIGHUP", "SIGTERM", "SIGUSR1"])
def test_bundle_crypto_serve_removes_the_plaintext_when_a_signal_stops_the_load(
    sealed: Path, key_file: Path, tmp_path: Path, name: str
) -> None:
    """SIGHUP (the terminal or SSH session of `kgfuse serve` closed) ended the process outright
    while the decrypted bundle lay in /dev/shm, and it stayed there; only SIGTERM was caught.
    A signal the process ignores (``nohup kgfuse serve``) stays ignored: the load goes on."""
    args = [str(sealed), str(key_file), str(tmp_path / "hot"), name]
    code = ["-c", _LOAD_STOPPED_BY_SIGNAL]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def load(handling: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *code, *args, handling]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    stopped = load("default")
    folder = Path(stopped.stdout.splitlines()[0])
    assert stopped.returncode == 128 + getattr(signal, name), stopped.stderr
    assert "loaded" not in stopped.stdout and not folder.exists()
    ignored = load("ignored")
    assert ignored.returncode == 0 and "loaded" in ignored.stdout, ignored.stderr
    assert not Path(ignored.stdout.splitlines()[0]).exists()


_DECRYPT_STOPPED_BY_SIGNAL = """
import os, signal, sys, time
from fusion import bundle_crypto
real, signum = bundle_crypto._extract, getattr(signal, sys.argv[1])
def extract(reader, dest):  # the signal comes once the plaintext is written, before the rename
    real(reader, dest)
    os.kill(os.getpid(), signum)
    time.sleep(5)
bundle_crypto._extract = extract
signal.signal(signum, signal.SIG_DFL)  # as from a terminal, even under a runner that ignores it
sys.argv = ["kgfuse", "bundle", "decrypt", *sys.argv[2:]]
from api.cli import main
main()
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_bundle_crypto_decrypt_stopped_by_a_signal_leaves_no_plaintext(
    sealed: Path, key_file: Path, tmp_path: Path, name: str
) -> None:
    """`kgfuse bundle decrypt` writes into a hidden temporary folder beside the output; killed
    by SIGTERM or SIGHUP it left that folder, the whole bundle in plaintext, behind."""
    out = tmp_path / "out"
    args = [name, str(sealed), "-o", str(out), "--key-file", str(key_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, "-c", _DECRYPT_STOPPED_BY_SIGNAL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 128 + getattr(signal, name), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sealed.name, key_file.name])


def _sealed_tar(path: Path, key: bytes, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """An authentic .kgfe (right key, every tag good) holding any tar: what an attacker with
    the key, or a bug, could write."""
    salt, prefix = b"s" * 16, b"p" * 6
    file_key, mac_key = bundle_crypto._derive(key, salt)
    header = bundle_crypto.Header(CHUNK, bundle_crypto.key_id(key), salt, prefix).pack(mac_key)
    with path.open("wb") as f:
        sealing = bundle_crypto._SealingWriter(f, header, file_key, prefix, CHUNK)
        with tarfile.open(fileobj=sealing, mode="w|") as tar:
            for info, data in members:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        sealing.finish()


def test_bundle_crypto_extracts_plain_files_under_the_output_only(
    key_file: Path, tmp_path: Path
) -> None:
    key = read_key(key_file, {})
    link = tarfile.TarInfo("kg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    for name, member in [
        ("escape", tarfile.TarInfo("../escaped.txt")),
        ("absolute", tarfile.TarInfo(str(tmp_path / "absolute.txt"))),
        ("link", link),
        ("device", device),
    ]:
        sealed = tmp_path / f"{name}.kgfe"
        _sealed_tar(sealed, key, [(tarfile.TarInfo("bundle.json"), b"{}"), (member, b"x")])
        with pytest.raises(BundleCryptoError, match="which is not a plain file of a bundle"):
            decrypt_bundle(sealed, tmp_path / "out", key)
        assert not (tmp_path / "out").exists(), name
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()
    # an authentic archive of plain files that is no bundle: refused after extraction
    sealed = tmp_path / "other.kgfe"
    _sealed_tar(sealed, key, [(tarfile.TarInfo("notes.txt"), b"hello")])
    with pytest.raises(BundleCryptoError, match="do not match its bundle"):
        decrypt_bundle(sealed, tmp_path / "out", key)
    assert not (tmp_path / "out").exists()


def test_bundle_crypto_decrypts_for_serving_into_a_private_folder_in_ram(
    sealed: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = read_key(key_file, {})
    with bundle_crypto.decrypted_bundle(sealed, key) as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and (folder / "bundle.json").is_file()
        if Path("/dev/shm").is_dir():
            assert folder.parent == Path("/dev/shm")
    assert not folder.exists()
    # a /dev/shm too small for the bundle (a container's 64 MB): the temporary folder, and a warning
    monkeypatch.setattr(bundle_crypto.shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
    with bundle_crypto.decrypted_bundle(sealed, key) as folder:
        assert folder.parent == Path(bundle_crypto.tempfile.gettempdir())
    assert not folder.exists() and "docker --shm-size" in caplog.text


def test_bundle_crypto_serve_refuses_before_starting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sealed: Path,
    key_file: Path,
    tiny_bundle: Path,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.key"
    write_key(other)
    hot = ["--hot-triples-dir", str(tmp_path / "hot")]
    cases = [
        ([str(sealed), *hot], f"  - {KEY_ENV}: no bundle key given"),
        (
            [str(sealed), "--key-file", str(key_file)],
            "  - --hot-triples-dir: is required with an encrypted bundle",
        ),
        (
            [str(sealed), "--key-file", str(key_file), *hot, "--ray"],
            "  - --ray: cannot serve an encrypted bundle",
        ),
        (
            [str(tiny_bundle), "--key-file", str(key_file)],
            f"  - --key-file: {tiny_bundle} is not an encrypted bundle",
        ),
        ([str(sealed), "--key-file", str(other), *hot], "error: wrong key for"),
    ]
    for args, message in cases:
        code = kgfuse(monkeypatch, "serve", *args)
        lines = capsys.readouterr().err.splitlines()
        assert code == 1 and message in lines[-1], (args, lines)


def test_bundle_crypto_serve_command_on_an_encrypted_bundle(
    monkeypatch: pytest.MonkeyPatch, sealed: Path, key_file: Path, tmp_path: Path
) -> None:
    """`kgfuse serve BUNDLE.kgfe`, the key in the environment, up to where uvicorn would listen
    (its app is called in-process here): no decrypted file is left by then, and it answers."""
    before = _plaintext_folders()
    answers = []

    def listen(app: Any, **options: Any) -> None:
        assert _plaintext_folders() <= before
        with TestClient(app) as client:
            answers.append(client.post("/v1/predict", json={"texts": [TEXT]}))

    monkeypatch.setattr("uvicorn.run", listen)
    monkeypatch.setenv(KEY_ENV, key_file.read_text())
    hot = ["--hot-triples-dir", str(tmp_path / "hot")]
    assert run_cli_in_process(monkeypatch, "serve", str(sealed), *hot) == 0
    assert answers[0].status_code == 200
    assert answers[0].json()["predictions"][0]["label"] in {"flu", "viral"}
    assert _plaintext_folders() <= before
