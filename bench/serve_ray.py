""".venv/bin/python bench/serve_ray.py --json bench/results/serve_ray.json

Throughput of `kgfuse serve --ray` (Ray Serve) with 1 and with 2 replicas of the demo fused
bundle. Smoke run: ``.venv/bin/python bench/serve_ray.py --seconds 5``. Needs Ray
(``pip install -e '.[ray]'``) and the demo bundle (``kgfuse demo --no-serve`` writes it).

1. For each replica count, starts one ``kgfuse serve BUNDLE --ray --replicas N`` subprocess (a
   local Ray instance of every core; each replica reserves ``--replica-cpus`` and runs
   ``--threads`` torch threads), waits until every replica is up and ``GET /ready`` answers.
2. Warms up, then runs ``--concurrency`` closed-loop clients (one shared ``httpx.AsyncClient``)
   for ``--seconds``: each sends one-text ``POST /v1/predict`` requests (``explain: false``;
   texts cycle through data/demo/test_unseen.csv) back to back. Reported, as in
   bench/serve.py (whose helpers this reuses): requests/s (answered with 200, over the wall
   time), p50/p95/p99 latency of those requests, errors (another status or an exception).
3. Stops the server with SIGTERM (Serve drains the replicas), then prints a table and the
   2-replica / 1-replica throughput ratio; ``--json FILE`` writes the same figures.

Clients, Ray's proxy and the replicas share the machine's cores: on 2 cores, 2 replicas may not
beat 1 (the proxy and the clients take CPU from them). The figures are what this machine does,
not what a cluster would; the exit code is 0 whatever they are.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as bench_serve  # bench/serve.py: statistics, clients, server helpers
from relpaths import relative_paths

REPO = bench_serve.REPO
KGFUSE = bench_serve.KGFUSE
READY_TIMEOUT_S = 300.0  # a Ray instance and the replicas' model loads, on busy cores
READY_LINE = "on Ray Serve at"  # logged by `kgfuse serve --ray` once every replica is up
STOP_TIMEOUT_S = 60.0


@contextmanager
def serve_ray(
    bundle: Path, replicas: int, args: argparse.Namespace
) -> Iterator[bench_serve.Server]:
    """A running ``kgfuse serve --ray`` with every replica ready; stopped on the way out."""
    command = [*KGFUSE, "serve", str(bundle), "--ray", "--replicas", str(replicas)]
    command += ["--port", str(args.port), "--threads", str(args.threads)]
    command += ["--replica-cpus", str(args.replica_cpus)]
    with tempfile.TemporaryDirectory(prefix="bench-serve-ray-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=bench_serve.server_env(None),
            )
        server = bench_serve.Server(process, f"http://127.0.0.1:{args.port}", log, command)
        try:
            wait_deployed(server)
            bench_serve.wait_ready(server)
            yield server
        finally:
            stop(server)


def wait_deployed(server: bench_serve.Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while READY_LINE not in server.log.read_text(encoding="utf-8", errors="replace"):
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"kgfuse serve --ray did not come up:\n{bench_serve.tail(server.log)}"
            )
        time.sleep(0.5)


def stop(server: bench_serve.Server) -> None:
    """SIGTERM (Serve drains the replicas and stops Ray); kill after ``STOP_TIMEOUT_S``."""
    if server.process.poll() is None:
        server.process.terminate()
        if bench_serve.wait_exit(server.process, STOP_TIMEOUT_S) is None:
            server.process.kill()
            server.process.wait()


async def measure(
    url: str, replicas: int, texts: list[str], args: argparse.Namespace
) -> bench_serve.Measurement:
    m = bench_serve.Measurement(f"{replicas} replica(s)", args.concurrency, False)
    async with bench_serve.make_client(args.concurrency) as client:
        await bench_serve.warm_up(client, url, texts, explain=False)
        await bench_serve.closed_loop(client, url, texts, m, args.seconds)
    return m


def row(replicas: int, m: bench_serve.Measurement) -> dict[str, Any]:
    s = m.summary()
    keep = ("clients", "seconds", "requests_ok", "requests_per_s", "p50_ms", "p95_ms", "p99_ms")
    return {
        "replicas": replicas,
        **{k: s[k] for k in keep},
        "errors": s["errors"],
        "error_kinds": s["error_kinds"],
    }


def print_table(rows: list[dict[str, Any]], ratio: float | None, console: Console) -> None:
    table = Table(title=f"kgfuse serve --ray, {rows[0]['clients']} clients, one text a request")
    for head in ("replicas", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(head, justify="right")
    for r in rows:
        figures = (bench_serve.fmt(r[k]) for k in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms"))
        table.add_row(str(r["replicas"]), str(r["requests_ok"]), *figures, str(r["errors"]))
    console.print(table)
    console.print(f"throughput, 2 replicas / 1 replica: {bench_serve.fmt(ratio, '.2f', 'x')}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("runs/demo/fused/bundle"))
    p.add_argument("--seconds", type=float, default=20.0, help="per replica count")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    p.add_argument("--port", type=int, default=8775)
    p.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs Ray reserves per replica")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    args.bundle = args.bundle if args.bundle.is_absolute() else REPO / args.bundle
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.bundle.is_dir():
        sys.exit(f"{args.bundle} is missing: make it with `kgfuse demo --no-serve` (a few minutes)")
    texts = bench_serve.read_texts()
    rows, commands = [], [[sys.executable, *sys.argv]]
    for replicas in (1, 2):
        print(
            f"serving {args.bundle} with {replicas} replica(s) on port {args.port} ...", flush=True
        )
        with serve_ray(args.bundle, replicas, args) as server:
            m = asyncio.run(measure(server.url, replicas, texts, args))
            commands.append(server.command)
        rows.append(row(replicas, m))
        print(f"  {bench_serve.brief(m)}", flush=True)
    ratio = bench_serve.ratio(rows[1]["requests_per_s"], rows[0]["requests_per_s"])
    print_table(rows, ratio, Console(width=None if sys.stdout.isatty() else 132))
    if args.json:
        report = {
            "benchmark": "serve_ray",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                **bench_serve.machine_info(args),
                "ray": ray_version(),
                "httpx": httpx.__version__,
            },
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "rows": rows,
            "throughput_2_vs_1_replicas": ratio,
            "commands": commands,
        }
        bench_serve.write_json(args.json, relative_paths(report))
        print(f"wrote {args.json}")


def ray_version() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    return str(ray.__version__)


if __name__ == "__main__":
    main()
