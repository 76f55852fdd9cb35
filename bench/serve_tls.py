""".venv/bin/python bench/serve_tls.py --json bench/results/serve_tls.json

What TLS costs the HTTP service: the same bundle served twice at once, ``kgfuse serve`` plain
and ``kgfuse serve --tls-cert --tls-key`` (a self-signed P-256 certificate made with
``openssl req`` for the run), on two loopback ports, each with ``--threads 1``.

Two measurements, each request sent to the two servers in turn (the order alternates), so a
change in the machine's load falls on both alike:

- ``predict, kept-alive``: one client per server sends one-text ``POST /v1/predict`` requests
  over one kept-alive connection (what a steady client pays: the record layer's encryption);
- ``health, new connection``: each ``GET /health`` opens a new connection (what the handshake
  costs: TCP plus, for HTTPS, the TLS handshake and certificate check).

Prints p50/p95 latency (ms) of each, with the HTTPS/HTTP ratio and difference; ``--json FILE``
writes the same figures, with paths relative to the repository. The bundle defaults to the one
``kgfuse demo`` writes (trained here when missing, as bench/serve.py does).
"""

from __future__ import annotations

import argparse
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from relpaths import write_report  # noqa: E402
from serve import KGFUSE, READY_TIMEOUT_S, ensure_bundle, percentile, read_texts, server_env  # noqa: E402


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its unencrypted key."""
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def server(bundle: Path, port: int, tls: tuple[Path, Path] | None, log: Path) -> Iterator[str]:
    """A ready ``kgfuse serve`` on ``port``; its base URL. Killed on the way out."""
    command = [*KGFUSE, "serve", str(bundle), "--port", str(port), "--threads", "1"]
    if tls:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=server_env(None)
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                sys.exit(f"{scheme} server exited {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                verify = str(tls[0]) if tls else True
                if httpx.get(f"{url}/ready", timeout=2, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{scheme} server not ready after {READY_TIMEOUT_S:g} s")
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def checked(response: httpx.Response, started: float) -> float:
    """Milliseconds since ``started``; an answer other than 200 stops the benchmark."""
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}")
    return elapsed


def measure(urls: dict[str, str], cert: Path, texts: list[str], requests: int) -> dict[str, Any]:
    """Per server, the latencies of kept-alive predictions and of new-connection health checks."""
    trust = ssl.create_default_context(cafile=str(cert))  # made once: not part of what is timed
    kept = {name: httpx.Client(verify=trust, timeout=30) for name in urls}
    predict: dict[str, list[float]] = {name: [] for name in urls}
    health: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    try:
        for name in names:  # warm-up: first model call, first connection
            for text in texts[:5]:
                kept[name].post(
                    f"{urls[name]}/v1/predict", json={"texts": [text], "explain": False}
                )
        for i in range(requests):
            order = names if i % 2 == 0 else names[::-1]
            body = {"texts": [texts[i % len(texts)]], "explain": False}
            for name in order:
                started = time.perf_counter()
                answer = kept[name].post(f"{urls[name]}/v1/predict", json=body)
                predict[name].append(checked(answer, started))
            for name in order:
                with httpx.Client(verify=trust, timeout=30) as fresh:
                    started = time.perf_counter()
                    answer = fresh.get(f"{urls[name]}/health")
                health[name].append(checked(answer, started))
    finally:
        for client in kept.values():
            client.close()
    rows = {}
    for kind, samples in (("predict, kept-alive", predict), ("health, new connection", health)):
        row: dict[str, Any] = {"requests": requests}
        for name in names:
            row[f"{name}_p50_ms"] = percentile(samples[name], 50)
            row[f"{name}_p95_ms"] = percentile(samples[name], 95)
        row["p50_ratio"] = row["https_p50_ms"] / row["http_p50_ms"]
        row["p50_extra_ms"] = row["https_p50_ms"] - row["http_p50_ms"]
        rows[kind] = row
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=REPO / "runs/demo/fused/bundle")
    p.add_argument("--requests", type=int, default=300, help="per measurement and server")
    p.add_argument("--port", type=int, default=8791, help="HTTP; HTTPS gets the next port")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    commands: list[list[str]] = []
    ensure_bundle(args.bundle, [], commands)
    texts = read_texts()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        cert, key = make_certificate(folder)
        urls = {
            "http": stack.enter_context(server(args.bundle, args.port, None, folder / "http.log")),
            "https": stack.enter_context(
                server(args.bundle, args.port + 1, (cert, key), folder / "https.log")
            ),
        }
        rows = measure(urls, cert, texts, args.requests)
    print(
        f"{'measurement':<24} {'HTTP p50':>9} {'HTTPS p50':>10} {'ratio':>6} {'extra':>8}"
        f" {'HTTP p95':>9} {'HTTPS p95':>10}"
    )
    for kind, row in rows.items():
        print(
            f"{kind:<24} {row['http_p50_ms']:>7.2f}ms {row['https_p50_ms']:>8.2f}ms"
            f" {row['p50_ratio']:>5.2f}x {row['p50_extra_ms']:>+6.2f}ms"
            f" {row['http_p95_ms']:>7.2f}ms {row['https_p95_ms']:>8.2f}ms"
        )
    if args.json:
        result = {
            "command": " ".join(
                [".venv/bin/python", "bench/serve_tls.py", *(argv or sys.argv[1:])]
            ),
            "bundle": str(args.bundle),
            "training_commands": [" ".join(c) for c in commands],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
            "results": rows,
        }
        write_report(args.json, result)


if __name__ == "__main__":
    main()
