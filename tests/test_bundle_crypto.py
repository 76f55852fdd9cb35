"""Encrypted bundles (fusion/bundle_crypto.py): `kgfuse bundle keygen/encrypt/decrypt` round-trip
a bundle, every change to the file (a flipped byte, a cut, an appended or swapped chunk) and a
wrong key is one line naming the fix with nothing written, and `kgfuse serve BUNDLE.kgfe`
answers like the plain bundle while leaving no plaintext file behind."""

from __future__ import annotations

import base64
import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
from tests.conftest import free_port, run_cli, run_cli_in_process

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
    ]
    for args, message in cases:
        code = kgfuse(monkeypatch, "bundle", *args)
        lines = capsys.readouterr().err.splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0], (args, lines)
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

    # a load that fails on the way still removes the plaintext
    def boom(*args: object) -> None:
        raise RuntimeError("load failed")

    monkeypatch.setattr("api.engine.Engine.load", boom)
    with pytest.raises(RuntimeError, match="load failed"):
        load_engine(
            ServeSettings(bundle=sealed, bundle_key_file=key_file, hot_triples_dir=hot), Metrics()
        )
    assert len(made) == 2 and not made[1].exists()


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
    sealed: Path, key_file: Path, tmp_path: Path
) -> None:
    """The real `kgfuse serve BUNDLE.kgfe`, the key in the environment: it answers, and once it
    is ready no decrypted file is left on disk."""
    before = _plaintext_folders()
    port = free_port()
    cmd = [sys.executable, "-c", "from api.cli import main; main()", "serve", str(sealed)]
    env = {**__import__("os").environ, KEY_ENV: key_file.read_text()}
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--hot-triples-dir", str(tmp_path / "hot")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if client.get("/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert proc.poll() is None, "kgfuse serve exited before it was ready"
            assert _plaintext_folders() <= before
            r = client.post("/v1/predict", json={"texts": [TEXT]})
            assert r.status_code == 200 and r.json()["predictions"][0]["label"] in {"flu", "viral"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in out, out
