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

``--ramp``: autoscaling under a load ramp instead (``.venv/bin/python bench/serve_ray.py --ramp
--ray-num-cpus 2 --json bench/results/serve_ray_ramp.json``, about 4 minutes):

1. Starts one ``kgfuse serve BUNDLE --ray --autoscale-min 1 --autoscale-max 3 --upscale-delay 5
   --downscale-delay 15`` (``--replica-cpus 0.5``: three replicas fit in 2 CPUs), and joins its
   Ray instance from this process (the server logs the address) to poll ``serve.status()``: the
   deployment's replicas by state, every ``--sample-every`` seconds.
2. Runs closed-loop clients in three phases: low (``--low-clients``, ``--low-seconds``), high
   (``--concurrency``, ``--high-seconds``), low again (``--after-seconds``).
3. Prints a per-phase table (req/s, p50, p99, errors, replicas at start, peak and end), the times
   the running replicas changed, and a PASS/FAIL line over three checks: the replicas rise under
   the high load, fall back afterwards, and no request failed (bench/ramp.py). ``--json FILE``
   writes it with the time series (one row per ``--step`` seconds) and ``uptime`` before and
   after (the cores are shared); FILE with ``.png`` is the plot: replicas, req/s and p99 over
   time, phases shaded. Exit code 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
import ramp  # bench/ramp.py: the ramp's series, summary, checks and plot
import serve as bench_serve  # bench/serve.py: statistics, clients, server helpers
from relpaths import write_report

from kg.files import write_bytes

REPO = bench_serve.REPO
KGFUSE = bench_serve.KGFUSE
READY_TIMEOUT_S = 300.0  # a Ray instance and the replicas' model loads, on busy cores
READY_LINE = "on Ray Serve at"  # logged by `kgfuse serve --ray` once every replica is up
ADDRESS_LINE = "Ray cluster address:"  # logged next: where a second driver can join
STOP_TIMEOUT_S = 60.0


@contextmanager
def serve_ray(
    bundle: Path, scaling: list[str], args: argparse.Namespace
) -> Iterator[bench_serve.Server]:
    """A running ``kgfuse serve --ray`` with every replica ready; stopped on the way out.
    ``scaling``: ``--replicas N``, or the autoscaling options."""
    command = [*KGFUSE, "serve", str(bundle), "--ray", *scaling]
    command += ["--port", str(args.port), "--threads", str(args.threads)]
    command += ["--replica-cpus", str(args.replica_cpus)]
    if args.ray_num_cpus is not None:
        command += ["--ray-num-cpus", str(args.ray_num_cpus)]
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


# ----------------------------------------------------------------- the load ramp (--ramp)


def ramp_phases(args: argparse.Namespace) -> list[ramp.Phase]:
    return [
        ramp.Phase("low", args.low_clients, args.low_seconds),
        ramp.Phase("high", args.concurrency, args.high_seconds),
        ramp.Phase("low again", args.low_clients, args.after_seconds),
    ]


def autoscaling_options(args: argparse.Namespace) -> list[str]:
    options = [
        "--autoscale-min",
        str(args.autoscale_min),
        "--autoscale-max",
        str(args.autoscale_max),
    ]
    options += ["--upscale-delay", f"{args.upscale_delay:g}"]
    options += ["--downscale-delay", f"{args.downscale_delay:g}"]
    if args.target_ongoing_requests is not None:
        options += ["--target-ongoing-requests", f"{args.target_ongoing_requests:g}"]
    return options


@contextmanager
def joined_ray(server: bench_serve.Server) -> Iterator[None]:
    """This process joins the server's Ray instance as a second driver (to read `serve.status()`),
    and leaves it on the way out; the instance itself stops with the server."""
    # a local instance started with RAY_AUTH_MODE unset wants the token (~/.ray/auth_token) it
    # made; a driver joining it by address sends it only in token mode (set before importing Ray)
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    lines = server.log.read_text(encoding="utf-8", errors="replace").splitlines()
    address = next((ln.split(ADDRESS_LINE, 1)[1].strip() for ln in lines if ADDRESS_LINE in ln), "")
    if not address:
        raise RuntimeError(f"the server logged no Ray address:\n{bench_serve.tail(server.log)}")
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


async def run_ramp(
    url: str, texts: list[str], phases: list[ramp.Phase], args: argparse.Namespace
) -> tuple[list[ramp.Request], list[ramp.Sample], int]:
    """The phases back to back, closed-loop; the replicas polled every ``--sample-every`` s.
    Returns every request, every replica sample, and how many polls failed."""
    from api.ray_serve import replica_states

    requests: list[ramp.Request] = []
    samples: list[ramp.Sample] = []
    failed_polls = 0
    async with bench_serve.make_client(max(p.clients for p in phases)) as client:
        await bench_serve.warm_up(client, url, texts, explain=False)
        t0 = time.perf_counter()

        async def poll() -> None:
            nonlocal failed_polls
            while True:
                try:
                    states = await asyncio.to_thread(replica_states)
                    samples.append(ramp.Sample(time.perf_counter() - t0, states))
                except Exception:  # a busy controller: a gap in the series, counted
                    failed_polls += 1
                await asyncio.sleep(args.sample_every)

        async def one_client(offset: int, clients: int, deadline: float) -> None:
            i = offset
            while time.perf_counter() < deadline:
                body = bench_serve.predict_body(texts[i % len(texts)], explain=False)
                latency, error, _ = await bench_serve.one_request(client, url, body)
                requests.append(ramp.Request(time.perf_counter() - t0, latency, error))
                i += clients

        poller = asyncio.create_task(poll())
        for phase, _, end in ramp.bounds(phases):
            now = f" (replicas now: {samples[-1].running})" if samples else ""
            print(
                f"  {phase.name}: {phase.clients} client(s) for {phase.seconds:g} s{now} ...",
                flush=True,
            )
            n = phase.clients
            await asyncio.gather(*(one_client(c, n, t0 + end) for c in range(n)))
        poller.cancel()
    return requests, samples, failed_polls


def print_ramp(summary: list[dict[str, Any]], verdict: dict[str, Any], console: Console) -> None:
    table = Table(title="kgfuse serve --ray, autoscaling under a load ramp")
    heads = ("phase", "clients", "seconds", "req/s", "p50 ms", "p99 ms", "errors", "replicas")
    for head in heads:
        table.add_column(head, justify="right")
    for p in summary:
        replicas = (
            f"{p['replicas_at_start']} -> peak {p['replicas_peak']} -> {p['replicas_at_end']}"
        )
        figures = (bench_serve.fmt(p[k]) for k in ("requests_per_s", "p50_ms", "p99_ms"))
        table.add_row(
            p["phase"], str(p["clients"]), f"{p['seconds']:g}", *figures, str(p["errors"]), replicas
        )
    console.print(table)
    changes = ", ".join(
        f"{c['from']}->{c['to']} at {c['t_s']:g} s" for c in verdict["replica_changes"]
    )
    console.print(f"running replicas changed: {changes or 'never'}")
    for name, ok in verdict["checks"].items():
        console.print(f"  {'ok  ' if ok else 'FAIL'} {ramp.CHECKS[name]}")
    console.print(verdict["result"])


def main_ramp(args: argparse.Namespace, texts: list[str]) -> bool:
    """The ramp against one autoscaling server; prints, writes ``--json`` and its PNG. True: PASS."""
    phases = ramp_phases(args)
    uptime_before = uptime()
    print(
        f"serving {args.bundle} with {args.autoscale_min}-{args.autoscale_max} replicas "
        f"(autoscaling) on port {args.port} ...",
        flush=True,
    )
    with serve_ray(args.bundle, autoscaling_options(args), args) as server, joined_ray(server):
        requests, samples, failed_polls = asyncio.run(run_ramp(server.url, texts, phases, args))
    summary = ramp.phase_summary(requests, samples, phases)
    verdict = ramp.verdict(summary, samples, high="high")
    print_ramp(summary, verdict, Console(width=None if sys.stdout.isatty() else 132))
    if failed_polls:
        print(f"{failed_polls} of the replica polls failed (gaps in the series)")
    if args.json:
        rows = ramp.series(requests, samples, phases, args.step)
        report = {
            "benchmark": "serve_ray_ramp",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                **bench_serve.machine_info(args),
                "uptime_before": uptime_before,
                "uptime_after": uptime(),
                "ray": ray_version(),
                "httpx": httpx.__version__,
            },
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "phases": [vars(p) for p in phases],
            "summary": summary,
            **verdict,
            "failed_polls": failed_polls,
            "series": rows,
            "commands": [[sys.executable, *sys.argv], server.command],
        }
        write_report(args.json, report)
        title = (
            f"kgfuse serve --ray --autoscale-min {args.autoscale_min} --autoscale-max "
            f"{args.autoscale_max}, {args.replica_cpus:g} CPU a replica, "
            f"{os.cpu_count()} cores: {'PASS' if verdict['passed'] else 'FAIL'}"
        )
        png = args.json.with_suffix(".png")
        write_bytes(png, ramp.plot(rows, phases, title))
        print(f"wrote {args.json} and {png}")
    return bool(verdict["passed"])


def uptime() -> str:
    """``uptime``'s line (the load of the shared machine), or the load averages without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("runs/demo/fused/bundle"))
    p.add_argument("--seconds", type=float, default=20.0, help="per replica count")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    p.add_argument("--port", type=int, default=8775)
    p.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    p.add_argument(
        "--replica-cpus",
        type=float,
        help="CPUs Ray reserves per replica (default: 1, or 0.5 with --ramp)",
    )
    p.add_argument("--ray-num-cpus", type=int, help="CPUs of the local Ray instance (every core)")
    p.add_argument("--json", type=Path, help="write the figures to this file (--ramp: and a PNG)")
    r = p.add_argument_group("the load ramp (--ramp): low, high (--concurrency clients), low")
    r.add_argument("--ramp", action="store_true", help="autoscale under a load ramp instead")
    r.add_argument("--autoscale-min", type=int, default=1)
    r.add_argument("--autoscale-max", type=int, default=3)
    r.add_argument("--target-ongoing-requests", type=float, help="(default: Ray's, 2)")
    r.add_argument("--upscale-delay", type=float, default=5.0, help="seconds (Ray's: 30)")
    r.add_argument("--downscale-delay", type=float, default=15.0, help="seconds (Ray's: 600)")
    r.add_argument("--low-clients", type=int, default=1)
    r.add_argument("--low-seconds", type=float, default=30.0, help="the first low phase")
    r.add_argument("--high-seconds", type=float, default=90.0)
    r.add_argument("--after-seconds", type=float, default=75.0, help="the low phase after")
    r.add_argument("--sample-every", type=float, default=1.0, help="seconds between polls")
    r.add_argument("--step", type=float, default=2.0, help="seconds per row of the series")
    args = p.parse_args(argv)
    if args.replica_cpus is None:
        args.replica_cpus = 0.5 if args.ramp else 1.0
    args.bundle = args.bundle if args.bundle.is_absolute() else REPO / args.bundle
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.bundle.is_dir():
        sys.exit(f"{args.bundle} is missing: make it with `kgfuse demo --no-serve` (a few minutes)")
    texts = bench_serve.read_texts()
    if args.ramp:
        sys.exit(0 if main_ramp(args, texts) else 1)
    rows, commands = [], [[sys.executable, *sys.argv]]
    for replicas in (1, 2):
        print(
            f"serving {args.bundle} with {replicas} replica(s) on port {args.port} ...", flush=True
        )
        with serve_ray(args.bundle, ["--replicas", str(replicas)], args) as server:
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
        write_report(args.json, report)
        print(f"wrote {args.json}")


def ray_version() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    return str(ray.__version__)


if __name__ == "__main__":
    main()
