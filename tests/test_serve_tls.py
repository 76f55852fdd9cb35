"""`kgfuse serve --tls-cert --tls-key`: the real server speaks HTTPS on loopback with a
certificate made here, refuses plain HTTP on that port, and a bad pair stops it before it
starts, in one line naming the option and the file."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from api.serve import tls_problems
from tests.conftest import free_port, run_cli, run_cli_in_process

TEXT = "a bad case of influenza"


def kgfuse(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``kgfuse ARGS`` in this process, in a wide terminal, with no API keys from the
    environment; its exit code."""
    monkeypatch.setenv("COLUMNS", "400")
    for variable in ("KGFUSE_READ_KEYS", "KGFUSE_ADMIN_KEYS", "KGFUSE_KEYS_FILE"):
        monkeypatch.delenv(variable, raising=False)
    return run_cli_in_process(monkeypatch, *args)


def self_signed(
    folder: Path, name: str = "server", password: bytes | None = None, weak: bool = False
) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its PEM key (``weak``:
    RSA-1024, which OpenSSL's default security level refuses)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 1024) if weak else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def test_serve_tls_answers_https_and_refuses_plain_http(tiny_bundle: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-c", "from api.cli import main; main()", "serve", str(tiny_bundle)]
    tls = ["--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        [*cmd, *tls], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    trusted = ssl.create_default_context(cafile=str(cert))  # trusts this certificate only
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, verify=trusted, timeout=30) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if client.get("/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert proc.poll() is None, "kgfuse serve exited before it was ready"
            assert client.get("/health").status_code == 200
            r = client.post("/v1/predict", json={"texts": [TEXT]})
            assert r.status_code == 200 and r.json()["predictions"][0]["label"] in {"flu", "viral"}
        # plain HTTP on the TLS port gets no answer; nor does a client that does not trust it
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/health", verify=ssl.create_default_context(), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert f"Uvicorn running on https://127.0.0.1:{port}" in out and "Traceback" not in out


def test_serve_tls_refuses_a_bad_pair_in_one_line_before_loading(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every refusal comes before the bundle is read: the bundle here does not exist."""
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    _, encrypted = self_signed(tmp_path, "locked", password=b"hunter2hunter2")
    weak_cert, weak_key = self_signed(tmp_path, "weak", weak=True)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    missing = tmp_path / "missing.crt"
    cases = [
        (["--tls-cert", str(cert)], "--tls-key: is required with --tls-cert"),
        (["--tls-key", str(key)], "--tls-cert: is required with --tls-key"),
        (
            ["--tls-cert", str(missing), "--tls-key", str(key)],
            f"--tls-cert: cannot read {missing}: No such file or directory",
        ),
        (
            ["--tls-cert", str(key), "--tls-key", str(key)],
            f"--tls-cert: {key} holds no PEM certificate",
        ),
        (["--tls-cert", str(cert), "--tls-key", str(junk)], f"--tls-key: {junk} holds no PEM"),
        (
            ["--tls-cert", str(cert), "--tls-key", str(other_key)],
            f"--tls-key: {other_key} is not the private key of the certificate {cert}",
        ),
        (
            ["--tls-cert", str(cert), "--tls-key", str(encrypted)],
            f"--tls-key: {encrypted} is encrypted; give it unencrypted (openssl pkey",
        ),
        (["--tls-cert", str(cert), "--tls-key", str(key), "--ray"], "--ray: cannot serve TLS"),
    ]
    try:  # whether RSA-1024 passes depends on the system's OpenSSL security level
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(weak_cert, weak_key)
        assert tls_problems(weak_cert, weak_key) == []
    except ssl.SSLError as e:
        weak = f"--tls-key: OpenSSL refuses {weak_key} with {weak_cert}: {e.reason}"
        cases.append((["--tls-cert", str(weak_cert), "--tls-key", str(weak_key)], weak))
    for options, problem in cases:
        code = kgfuse(monkeypatch, "serve", str(tmp_path / "no-bundle"), *options)
        lines = capsys.readouterr().err.splitlines()
        assert code == 1 and len(lines) == 2, (options, lines)
        assert lines[0] == "error: 1 bad serve setting(s):", lines
        assert lines[1].startswith(f"  - {problem}"), (options, lines)
    assert tls_problems(other_cert, other_key) == [] and tls_problems(None, None) == []
    # a key of another type: OpenSSL's own words were "NO_CERTIFICATE_ASSIGNED"
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(
        rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mismatch = f"{rsa_key} is not the private key of the certificate {cert}"
    assert tls_problems(cert, rsa_key) == [("--tls-key", mismatch)]
    # the real command: exit 1, one problem, no traceback
    r = run_cli("serve", str(tmp_path / "no-bundle"), "--tls-cert", str(cert))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--tls-key: is required with --tls-cert" in r.stderr
