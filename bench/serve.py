""".venv/bin/python bench/serve.py --json bench/results/serve.json

Load test of the HTTP service (`kgfuse serve`), fused model against the text-only baseline.
Smoke run, a few seconds a measurement: ``.venv/bin/python bench/serve.py --quick``.

1. Trains the demo bundles if missing (``kgfuse train configs/demo.yaml``, about a minute
   each): ``--text`` (``model.mode=text``) and ``--fused``.
2. For each bundle, text first, starts one ``kgfuse serve BUNDLE`` subprocess, waits for
   ``GET /ready``, warms up, then runs closed-loop clients (one shared ``httpx.AsyncClient``):
   at each ``--concurrency``, that many clients each send one-text ``POST /v1/predict``
   requests (``explain: false``; texts cycle through data/demo/test_unseen.csv) back to back
   for ``--seconds``. Every request's latency and status is kept; an error is a status other
   than 200 or an exception. Reported: requests/s (answered with 200, over the wall time of
   the measurement), p50/p95/p99 latency of those requests, errors. The fused server also runs
   one client with ``explain: true, top_k_paths: 3`` (the cost of the supporting paths).
3. Stops each server with SIGTERM while a few requests (16 texts each) are in flight: a
   graceful shutdown answers them all with 200 and exits within 30 s, with 0 or by the SIGTERM
   that uvicorn re-raises after "Application shutdown complete".
4. With ``--schemathesis`` (default), starts the fused server again and runs schemathesis
   (``--checks not_a_server_error``) on its OpenAPI spec: every operation, generated inputs
   valid and invalid; a 5xx answer is a failure. An admin key is set (and sent) so the
   admin route runs too; its added triples go to a temporary folder, not the bundle.
5. The ``reliability`` section (bench/serve_reliability.py): fuzz cases and 5xx answers,
   innocent texts answered in batches holding a bad one, RSS growth under an XML bomb, p99
   during a large hot-triples insert against normal p99 (and restart times with and without
   the features cache), corrupted bundles refused.
6. Prints a table (model x concurrency) with ratios against the same run's baselines, the
   reliability figures, then the targets, met or MISSED; ``--json FILE`` writes the same
   figures, with paths relative to the repository.

``--only load schemathesis reliability`` runs some parts (reliability also runs schemathesis
for its fuzz counts); with ``--json`` naming an existing file, the parts not run keep their
figures from it, so one part can be re-run quickly.

Each measurement also keeps the server's own p50 timings (``timings_ms`` of the answers: link,
model, explain, queue, total) in the JSON, to tell where the time goes. The default bundles are
the ones ``kgfuse demo`` writes (and rewrites: do not run both at once).

Clients and server share the machine's cores, so the figures are a lower bound of what the
server alone can do. Servers run with torch's default threads (one per core, ``--threads 0``):
OpenMP threads that spin while they wait once made model calls 10-60x slower on busy cores, so
earlier runs used ``--threads 1``; the kgfuse CLI now sets ``OMP_WAIT_POLICY=PASSIVE``, and the
control server ``fused, 1 thread`` keeps that old setting, measured in the same run (1 and 32
clients). ``--onnx BUNDLE`` (a ``kgfuse export --onnx`` of the fused bundle) adds the server
``fused, ONNX`` at 1 and 32 clients. The machine's load average is recorded at the start and
the end. The exit code is 0 even when a target is missed: this is a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from kg.files import write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/serve_reliability.py, timing.py
from timing import percentile  # noqa: E402  (kg_scale.py and serve_tls.py take it from here)

DEMO_TEXTS = REPO / "data" / "demo" / "test_unseen.csv"
DEMO_CONFIG = "configs/demo.yaml"
KGFUSE = [sys.executable, "-c", "from api.cli import main; main()"]
READY_TIMEOUT_S = 120.0
SHUTDOWN_TIMEOUT_S = 30.0
WARMUP_REQUESTS = 10
INFLIGHT_AT_SHUTDOWN, INFLIGHT_TEXTS = 8, 16  # requests in flight at SIGTERM, texts each
EXPLAIN_TOP_K = 3
UNBATCHED = "fused, max_batch 1"  # the control: the same server with batching off
ONE_THREAD = "fused, 1 thread"  # the control: the same server with --threads 1 (earlier runs)
ONNX = "fused, ONNX"  # --onnx: the fused bundle exported with its encoder on ONNX Runtime
SCHEMATHESIS_TIMEOUT_S = 900.0

# Targets of the issue: (figure key, comparison, threshold).
TARGETS: dict[str, tuple[str, float]] = {
    "total_errors": ("<=", 0),
    "fused_vs_text_p50_c1": ("<=", 1.3),
    "fused_throughput_c32_vs_c1": (">=", 3.0),
    "explain_p50_overhead": ("<=", 0.5),
    "batching_gain_c32": (">=", 1.0),  # not an issue target: batching must at least not hurt
    "schemathesis_server_errors": ("<=", 0),
    "graceful_shutdowns_failed": ("<=", 0),
    "innocent_answered_share": (">=", 1.0),
    "insert_p99_ratio": ("<=", 2.0),
    "corrupt_refused_share": (">=", 1.0),
}
TARGET_NAMES = {
    "total_errors": "errors, every measurement",
    "fused_vs_text_p50_c1": "fused p50 / text p50, 1 client",
    "fused_throughput_c32_vs_c1": "fused req/s, 32 clients / 1 client",
    "explain_p50_overhead": "explain:true p50 overhead, fused, 1 client",
    "batching_gain_c32": "fused req/s at 32 clients, batching on / off",
    "schemathesis_server_errors": "schemathesis: operations with a 5xx",
    "graceful_shutdowns_failed": "servers not shut down gracefully",
    "innocent_answered_share": "innocent texts answered in batches with a bad one",
    "insert_p99_ratio": "p99 during a large hot-triples insert / normal p99",
    "corrupt_refused_share": "corrupted bundles refused / loads tried",
}
PARTS = ("load", "schemathesis", "reliability")


# ------------------------------------------------------------------ statistics


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def meets(key: str, value: float | None) -> bool | None:
    """Whether ``value`` meets the target ``key`` (None: not measured)."""
    if value is None:
        return None
    op, threshold = TARGETS[key]
    return value >= threshold if op == ">=" else value <= threshold


@dataclass
class Measurement:
    """One closed-loop run: ``clients`` clients for ``seconds`` against one server."""

    model: str
    clients: int
    explain: bool
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    errors: Counter[str] = field(default_factory=Counter)
    server_ms: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def record(self, latency_ms: float, error: str | None, timings: dict[str, float]) -> None:
        """One request: its latency (ms), error kind (None: 200), the server's timings_ms."""
        if error is not None:
            self.errors[error] += 1
            return
        self.latencies_ms.append(latency_ms)
        for key, value in timings.items():
            self.server_ms.setdefault(key, []).append(value)

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        return {
            "model": self.model,
            "clients": self.clients,
            "explain": self.explain,
            "seconds": round(self.seconds, 3),
            "requests_ok": ok,
            "requests_per_s": ratio(ok, self.seconds),
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "server_p50_ms": {k: percentile(v, 50) for k, v in self.server_ms.items()},
        }


# ------------------------------------------------------------------ bundles and servers


def read_texts() -> list[str]:
    with DEMO_TEXTS.open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def ensure_bundle(bundle: Path, extra: list[str], commands: list[list[str]]) -> None:
    """Train the demo bundle into ``bundle`` (which must be ``DIR/bundle``) if it is missing."""
    if bundle.is_dir():
        return
    if bundle.name != "bundle":
        sys.exit(f"{bundle} is missing; a bundle to train must be named DIR/bundle")
    command = [*KGFUSE, "train", DEMO_CONFIG, *extra, f"output={bundle.parent}"]
    commands.append(command)
    print(f"training {bundle} (about a minute) ...", flush=True)
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def server_env(admin_key: str | None) -> dict[str, str]:
    """The environment minus any API keys of the caller, so reading is open."""
    keys = ("KGFUSE_READ_KEYS", "KGFUSE_ADMIN_KEYS", "KGFUSE_KEYS_FILE")
    env = {k: v for k, v in os.environ.items() if k not in keys}
    if admin_key:
        env["KGFUSE_ADMIN_KEYS"] = admin_key
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    command: list[str]


@contextmanager
def serve(
    bundle: Path, port: int, threads: int, extra: tuple[str, ...] = (), admin_key: str = ""
) -> Iterator[Server]:
    """A running ``kgfuse serve`` (ready); killed on the way out if still running."""
    command = [*KGFUSE, "serve", str(bundle), "--port", str(port), "--threads", str(threads)]
    command += list(extra)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=server_env(admin_key)
            )
        server = Server(process, f"http://127.0.0.1:{port}", log, command)
        try:
            wait_ready(server)
            yield server
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited {server.process.returncode}:\n{tail(server.log)}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:g} s:\n{tail(server.log)}")


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------ load


def predict_body(text: str, explain: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"texts": [text], "explain": explain}
    if explain:
        body["top_k_paths"] = EXPLAIN_TOP_K
    return body


async def one_request(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[float, str | None, dict[str, float]]:
    """Latency (ms), the error kind (None: answered 200) and the server's own timings (ms:
    link, model, explain of the batch; queue: the rest of the request's time in the server)."""
    start = time.perf_counter()
    try:
        response = await client.post(f"{url}/v1/predict", json=body)
    except httpx.HTTPError as e:
        return (time.perf_counter() - start) * 1e3, type(e).__name__, {}
    latency = (time.perf_counter() - start) * 1e3
    if response.status_code != 200:
        return latency, str(response.status_code), {}
    answer = response.json()
    return latency, None, {**answer["predictions"][0]["timings_ms"], **answer["timings_ms"]}


async def closed_loop(
    client: httpx.AsyncClient, url: str, texts: list[str], m: Measurement, seconds: float
) -> None:
    """``m.clients`` clients send requests back to back for ``seconds``; fills ``m``."""
    deadline = time.perf_counter() + seconds

    async def one_client(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            body = predict_body(texts[i % len(texts)], m.explain)
            m.record(*await one_request(client, url, body))
            i += m.clients

    start = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(m.clients)))
    m.seconds = time.perf_counter() - start


def make_client(max_clients: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_clients + 8, max_keepalive_connections=max_clients)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))


async def warm_up(client: httpx.AsyncClient, url: str, texts: list[str], explain: bool) -> None:
    for i in range(WARMUP_REQUESTS):
        for flag in (False, True) if explain else (False,):
            response = await client.post(f"{url}/v1/predict", json=predict_body(texts[i], flag))
            response.raise_for_status()


async def measure_server(
    url: str, model: str, texts: list[str], args: argparse.Namespace
) -> list[Measurement]:
    """Every measurement of one server: each concurrency, then (fused) explain at 1 client.
    The unbatched control runs only at the highest concurrency."""
    if model == UNBATCHED:
        runs = [Measurement(model, max(args.concurrency), False)]
    elif model in (ONE_THREAD, ONNX):
        runs = [Measurement(model, c, False) for c in sorted({1, max(args.concurrency)})]
    else:
        runs = [Measurement(model, c, False) for c in args.concurrency]
    if model == "fused":
        runs.append(Measurement(model, 1, True))
    async with make_client(max(args.concurrency)) as client:
        await warm_up(client, url, texts, explain=model == "fused")
        for m in runs:
            await closed_loop(client, url, texts, m, args.seconds)
            print(f"  {model} clients={m.clients} explain={m.explain}: {brief(m)}", flush=True)
    return runs


def brief(m: Measurement) -> str:
    s = m.summary()
    server = ", ".join(f"{k} {v:.1f}" for k, v in s["server_p50_ms"].items() if v is not None)
    return (
        f"{s['requests_per_s'] or 0:.1f} req/s, p50 {s['p50_ms'] or 0:.1f} ms, "
        f"{s['errors']} errors (server p50 ms: {server})"
    )


# ------------------------------------------------------------------ shutdown


async def shutdown(server: Server) -> dict[str, Any]:
    """SIGTERM while ``INFLIGHT_AT_SHUTDOWN`` requests are in flight; did they all get 200,
    and did the process exit cleanly within ``SHUTDOWN_TIMEOUT_S``?"""
    texts = read_texts()
    async with make_client(INFLIGHT_AT_SHUTDOWN) as client:
        body = {"texts": texts[:INFLIGHT_TEXTS], "explain": False}  # slow enough to be caught
        tasks = [
            asyncio.create_task(one_request(client, server.url, body))
            for _ in range(INFLIGHT_AT_SHUTDOWN)
        ]
        await asyncio.sleep(0.05)  # let the requests reach the server
        start = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*tasks)
    code = await asyncio.to_thread(wait_exit, server.process, SHUTDOWN_TIMEOUT_S)
    answered = sum(error is None for _, error, _ in results)
    clean = clean_exit(code, server.log)
    return {
        "exit_code": code,
        "clean_exit": clean,
        "exit_s": round(time.perf_counter() - start, 3),
        "inflight_sent": INFLIGHT_AT_SHUTDOWN,
        "inflight_answered_200": answered,
        "graceful": clean and answered == INFLIGHT_AT_SHUTDOWN,
    }


def clean_exit(code: int | None, log: Path) -> bool:
    """Exit 0, or death by the SIGTERM that uvicorn re-raises once its shutdown is complete
    (uvicorn >= 0.29 does so, for the parent's signal handlers): both are clean."""
    if code == 0:
        return True
    return code == -signal.SIGTERM and "Application shutdown complete" in tail(log, 5)


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def bench_bundle(
    name: str, bundle: Path, port: int, texts: list[str], args: argparse.Namespace
) -> tuple[list[Measurement], dict[str, Any], list[str]]:
    """Start a server on ``bundle``, measure it, stop it; the measurements, the shutdown."""
    print(f"serving {name}: {bundle} on port {port}", flush=True)
    extra = ("--max-batch", "1") if name == UNBATCHED else ()
    threads = 1 if name == ONE_THREAD else args.threads
    with serve(bundle, port, threads, extra) as server:
        runs = asyncio.run(measure_server(server.url, name, texts, args))
        stop = asyncio.run(shutdown(server))
        if not stop["graceful"]:
            stop["server_log_tail"] = tail(server.log)
    print(f"  shutdown: {stop}", flush=True)
    return runs, stop, server.command


# ------------------------------------------------------------------ schemathesis


def schemathesis_command(url: str, report: Path, args: argparse.Namespace, key: str) -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    return [
        str(exe),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(args.schemathesis_examples),
        "--seed",
        "0",
        "--header",
        f"X-API-Key: {key}",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]


def run_schemathesis(bundle: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Schemathesis against a fresh fused server; exit code, counts and the output's tail."""
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="bench-serve-st-") as tmp:
        extra = ("--hot-triples-dir", str(Path(tmp) / "hot-triples"))
        report = Path(tmp) / "report.json"
        with serve(bundle, port, args.threads, extra, admin_key=key) as server:
            command = schemathesis_command(server.url, report, args, key)
            print(f"schemathesis on {server.url} ...", flush=True)
            code, output = run_quietly(command, cwd=tmp, timeout=SCHEMATHESIS_TIMEOUT_S)
            counts = parse_report(report)
            log = tail(server.log, 40) if code != 0 else ""
    print(f"  schemathesis: exit {code}, {counts}", flush=True)
    return {
        "exit_code": code,
        "ok": code == 0 and counts.get("server_errors") == 0,
        **counts,
        "command": [c.replace(key, "KEY") for c in command],
        "output_tail": "\n".join(output.splitlines()[-25:]),
        **({"server_log_tail": log} if log else {}),
    }


def run_quietly(command: list[str], cwd: str, timeout: float) -> tuple[int | None, str]:
    """Exit code (None: did not finish in time or could not start) and the output."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{type(e).__name__}: {e}"
    return done.returncode, done.stdout + done.stderr


def parse_report(report: Path) -> dict[str, Any]:
    """Operations, test cases and failures from schemathesis' JSON report (4.x); only
    ``not_a_server_error`` runs, so every failure is a 5xx. Empty when there is no report."""
    if not report.exists():
        return {}
    doc = json.loads(report.read_text(encoding="utf-8"))
    failures = doc.get("failures", [])
    failed = sorted({op for f in failures for op in f.get("operations", [])})
    return {
        "operations": doc.get("operations", {}).get("tested"),
        "test_cases": doc.get("test_cases", {}).get("generated"),
        "failures": [{k: f.get(k) for k in ("title", "count", "operations")} for f in failures],
        "errors": doc.get("errors", []),
        "warnings": {k: v for k, v in doc.get("warnings", {}).items() if v},
        "server_error_operations": failed,
        "server_errors": len(failed),
    }


# ------------------------------------------------------------------ report


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Per row: throughput against the same model at 1 client; p50 against the text model at
    the same concurrency (or, for explain, against the same model without explain)."""
    plain = {(r["model"], r["clients"]): r for r in rows if not r["explain"]}
    for r in rows:
        one = plain.get((r["model"], 1)) or plain.get(("fused", 1), {})  # unbatched: vs fused
        r["throughput_vs_c1"] = ratio(r["requests_per_s"], one.get("requests_per_s"))
        if r["explain"]:
            base, label = plain.get((r["model"], r["clients"])), "no explain"
        elif r["model"] != "text":
            base, label = plain.get(("text", r["clients"])), "text"
        else:
            base, label = None, None
        r["p50_vs_baseline"] = ratio(r["p50_ms"], base["p50_ms"]) if base else None
        r["p50_baseline"] = label if base else None


def find(rows: list[dict[str, Any]], model: str, clients: int, explain: bool = False) -> dict:
    for r in rows:
        if (r["model"], r["clients"], r["explain"]) == (model, clients, explain):
            return r
    return {}


def target_values(
    rows: list[dict[str, Any]],
    shutdowns: dict[str, Any],
    st: dict[str, Any] | None,
    reliability: dict[str, Any] | None = None,
) -> dict[str, float | None]:
    from serve_reliability import summary

    rel = summary(reliability)
    fused1, explain1 = find(rows, "fused", 1), find(rows, "fused", 1, True)
    overhead = ratio(explain1.get("p50_ms"), fused1.get("p50_ms"))
    return {
        "total_errors": sum(r["errors"] for r in rows) if rows else None,
        "fused_vs_text_p50_c1": ratio(fused1.get("p50_ms"), find(rows, "text", 1).get("p50_ms")),
        "fused_throughput_c32_vs_c1": find(rows, "fused", 32).get("throughput_vs_c1"),
        "batching_gain_c32": ratio(
            find(rows, "fused", 32).get("requests_per_s"),
            find(rows, UNBATCHED, 32).get("requests_per_s"),
        ),
        "explain_p50_overhead": None if overhead is None else overhead - 1.0,
        "schemathesis_server_errors": (st or {}).get("server_errors"),
        "graceful_shutdowns_failed": (
            sum(not s["graceful"] for s in shutdowns.values()) if shutdowns else None
        ),
        "innocent_answered_share": ratio(rel["innocent_answered"], rel["innocent_sent"]),
        "insert_p99_ratio": rel["insert_p99_ratio"],
        "corrupt_refused_share": ratio(rel["corrupt_refused"], rel["corrupt_tried"]),
    }


def targets(values: dict[str, float | None]) -> list[dict[str, Any]]:
    return [
        {
            "measure": key,
            "name": TARGET_NAMES[key],
            "value": values[key],
            "op": op,
            "threshold": threshold,
            "ok": meets(key, values[key]),
        }
        for key, (op, threshold) in TARGETS.items()
    ]


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def print_table(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="kgfuse serve: closed-loop load, one-text requests")
    heads = ["model", "clients", "explain", "requests", "req/s", "x 1 client"]
    heads += ["p50 ms", "p95 ms", "p99 ms", "p50 vs", "errors"]
    for head in heads:
        table.add_column(head, justify="left" if head in ("model", "p50 vs") else "right")
    for r in rows:
        versus = (
            r["p50_baseline"] and f"{fmt(r['p50_vs_baseline'], '.2f', 'x')} {r['p50_baseline']}"
        )
        table.add_row(
            r["model"],
            str(r["clients"]),
            "yes" if r["explain"] else "no",
            str(r["requests_ok"]),
            fmt(r["requests_per_s"]),
            fmt(r["throughput_vs_c1"], ".2f", "x"),
            *(fmt(r[k]) for k in ("p50_ms", "p95_ms", "p99_ms")),
            versus or "",
            str(r["errors"]),
        )
    console.print(table)


def print_reliability(rel: dict[str, Any] | None, console: Console) -> None:
    from serve_reliability import summary

    if not rel:
        return
    f = summary(rel)
    restart = rel.get("large_insert", {}).get("restart", {})
    table = Table(title="kgfuse serve: reliability")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("fuzz cases tried (schemathesis)", str(f["fuzz_cases"])),
        ("5xx answers seen in fuzzing", str(f["fuzz_5xx"])),
        (
            "innocent texts answered / sent, batches with one bad text",
            f"{f['innocent_answered']} / {f['innocent_sent']}",
        ),
        ("max RSS growth under the XML bomb", fmt(f["bomb_rss_growth_mib"], ".0f", " MiB")),
        ("p99 during a large insert / normal p99", fmt(f["insert_p99_ratio"], ".2f", "x")),
        (
            "start to ready: no hot triples / cached / cache removed",
            " / ".join(
                fmt(restart.get(k), ".1f", " s")
                for k in (
                    "ready_s_without_hot_triples",
                    "ready_s_cached",
                    "ready_s_cache_removed",
                )
            ),
        ),
        (
            "corrupted bundle loads refused / tried",
            f"{f['corrupt_refused']} / {f['corrupt_tried']}",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_targets(checked: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="targets")
    for head in ("target", "value", "required", "result"):
        table.add_column(head)
    for t in checked:
        result = {True: "met", False: "[red]MISSED[/red]", None: "n/a"}[t["ok"]]
        value = t["value"] if isinstance(t["value"], int) else fmt(t["value"], ".2f")
        table.add_row(t["name"], str(value), f"{t['op']} {t['threshold']:g}", result)
    console.print(table)
    missed = [t["name"] for t in checked if t["ok"] is False]
    console.print(f"MISSED {len(missed)}: {', '.join(missed)}" if missed else "All targets met.")


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "server_threads_option": args.threads,
        "torch_default_threads": torch.get_num_threads(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "httpx": httpx.__version__,
    }


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fused", type=Path, default=Path("runs/demo/fused/bundle"))
    p.add_argument("--text", type=Path, default=Path("runs/demo/text/bundle"))
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--port", type=int, default=8765, help="first port; one more per server")
    p.add_argument("--threads", type=int, default=0, help="server torch threads (0: default)")
    p.add_argument("--onnx", type=Path, help="also serve this `kgfuse export --onnx` bundle")
    p.add_argument("--schemathesis", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--schemathesis-examples", type=int, default=30, help="per operation")
    p.add_argument("--quick", action="store_true", help="3 s per measurement (smoke run)")
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run")
    p.add_argument("--insert-entities", type=int, default=5_000, help="reliability: insert size")
    p.add_argument("--insert-baseline-s", type=float, default=20.0, help="reliability: normal p99")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = 3.0
    args.concurrency = sorted(set(args.concurrency) | {1})  # 1 client: every ratio's baseline
    args.fused, args.text = (
        REPO / b if not b.is_absolute() else b for b in (args.fused, args.text)
    )
    return args


def run_all(args: argparse.Namespace, commands: list[list[str]]) -> dict[str, Any]:
    """Train if needed, then the parts asked for: both servers under load, schemathesis, the
    reliability section; the raw results (None for a part not run)."""
    ensure_bundle(args.fused, [], commands)
    results: dict[str, Any] = {"rows": None, "shutdowns": None}
    if "load" in args.only:
        ensure_bundle(args.text, ["model.mode=text"], commands)
        results.update(run_load(args, commands))
    st = None
    if args.schemathesis and {"schemathesis", "reliability"} & set(args.only):
        st = run_schemathesis(args.fused, args.port + 3, args)
        commands.append(st["command"])
    results["schemathesis"] = st
    results["reliability"] = None
    if "reliability" in args.only:
        from serve_reliability import run_reliability

        results["reliability"] = run_reliability(args.fused, args.port + 4, args, st)
    return results


def run_load(args: argparse.Namespace, commands: list[list[str]]) -> dict[str, Any]:
    """Measure the text, fused and unbatched servers under load, and their shutdowns."""
    texts = read_texts()
    rows: list[dict[str, Any]] = []
    shutdowns: dict[str, Any] = {}
    servers = [("text", args.text), ("fused", args.fused), (UNBATCHED, args.fused)]
    servers.append((ONE_THREAD, args.fused))
    if args.onnx is not None:
        servers.append((ONNX, args.onnx))
    for n, (name, bundle) in enumerate(servers):
        runs, shutdowns[name], command = bench_bundle(name, bundle, args.port + n, texts, args)
        rows += [m.summary() for m in runs]
        commands.append(command)
    add_ratios(rows)
    return {"rows": rows, "shutdowns": shutdowns}


def merged(results: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """``results`` with the parts it lacks (None) taken from the report at ``path``, if any;
    ``kept_from_previous_run`` names them."""
    if path is None or not path.is_file():
        return results
    old = json.loads(path.read_text(encoding="utf-8"))
    kept = [k for k, v in results.items() if v is None and old.get(k) is not None]
    return {
        **{k: old.get(k) if v is None else v for k, v in results.items()},
        "kept_from_previous_run": kept,
    }


def relative(value: Any) -> Any:
    """``value`` with every path inside the repository made relative to it, the interpreter
    and the tools beside it (schemathesis) named alone, temporary folders named ``$TMPDIR``."""
    if isinstance(value, dict):
        return {k: relative(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [relative(v) for v in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        value = value.replace(sys.executable, "python")
        value = value.replace(f"{Path(sys.executable).parent}/", "").replace(f"{REPO}/", "")
        return value.replace(str(REPO), ".").replace(tempfile.gettempdir(), "$TMPDIR")
    return value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    commands: list[list[str]] = [[sys.executable, *sys.argv]]
    results = merged(run_all(args, commands), args.json)
    rows, shutdowns = results["rows"] or [], results["shutdowns"] or {}
    kept = results.pop("kept_from_previous_run", [])
    values = target_values(rows, shutdowns, results["schemathesis"], results["reliability"])
    checked = targets(values)
    console = Console(width=None if sys.stdout.isatty() else 132)  # a file gets whole rows
    print_table(rows, console)
    print_reliability(results["reliability"], console)
    print_targets(checked, console)
    if args.json:
        report = {
            "benchmark": "serve",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {**machine_info(args), "load_average_at_start": load_at_start},
            "parameters": vars(args),
            **results,
            "kept_from_previous_run": kept,
            "targets": checked,
            "missed": [t["measure"] for t in checked if t["ok"] is False],
            "all_targets_met": all(t["ok"] is not False for t in checked),
            "commands": commands,
        }
        write_json(args.json, relative(report))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
