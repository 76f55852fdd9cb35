""".venv/bin/python bench/triplestore.py --json bench/results/triplestore.json
Quick run, well under a minute: .venv/bin/python bench/triplestore.py --triples 200000

Benchmark of the triple-store backend (kg/store_graph.py over kg/triplestore.py) against the KG
loaded in memory.

1. Writes the synthetic N-Triples file of bench/kg_load.py (same generator, same seed): one
   label per entity, Zipf-like entity-to-entity edges.
2. Each operation runs in its own fresh Python process, so its peak RSS (``ru_maxrss``, with
   ``VmHWM`` beside it) is its own:
   - memory (the baseline): ``kg.load(file)``, then ``graph.subgraph`` latency;
   - store: ``kg.triplestore_load.bulk_load`` into an on-disk Oxigraph store (pyoxigraph's bulk
     loader, bounded memory);
   - endpoint: ``oxigraph serve-read-only`` on that store, then ``StoreGraph.subgraph`` over
     HTTP for ``--queries`` seeded random seeds, first each with empty caches (cold), then the
     same seeds again with the caches filled (warm). The JSON keys (``endpoint.cold``,
     ``endpoint.warm``) are those of the earlier ``TripleStoreGraph.neighborhood`` figures.
3. Prints the figures and their ratios to the baseline; ``--json FILE`` writes them.

``hops`` and ``max_nodes`` are those of bench/kg_load.py (2, 128). MB means MiB.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kg_load
from kg_load import IRI_BASE, write_ntriples
from relpaths import relative_paths

HOPS, MAX_NODES, QUERY_SEED = 2, 128, 1
WARM_TARGET_MS = 50.0  # the target for a warm 2-hop subgraph on 10M triples


def _seeds(entities: int, count: int) -> list[int]:
    rng = np.random.default_rng(QUERY_SEED)
    return rng.choice(entities, size=min(count, entities), replace=False).tolist()


def _latency(millis: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(millis)), "p95_ms": float(np.percentile(millis, 95))}


def op_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """The baseline: load the file in memory, then time single-seed subgraphs."""
    import kg

    start = time.perf_counter()
    graph = kg.load(spec["nt"])
    load_s = time.perf_counter() - start
    millis = []
    for s in _seeds(spec["entities"], spec["queries"]):
        start = time.perf_counter()
        graph.subgraph([graph.entity_id(f"{IRI_BASE}entity/{s}")], HOPS, MAX_NODES)
        millis.append((time.perf_counter() - start) * 1000)
    return {"load_s": load_s, **_latency(millis)}


def op_store(spec: dict[str, Any]) -> dict[str, Any]:
    """Bulk-load the file into the on-disk store."""
    from kg.triplestore_load import bulk_load

    start = time.perf_counter()
    quads = bulk_load([spec["nt"]], spec["store"])
    return {"load_s": time.perf_counter() - start, "quads": quads}


def op_endpoint(spec: dict[str, Any]) -> dict[str, Any]:
    """Subgraphs over HTTP, cold caches then warm caches, same seeds."""
    from kg.store_graph import StoreGraph

    graph = StoreGraph.connect(spec["url"], timeout_s=120)
    seeds = [
        graph.entity_id(f"{IRI_BASE}entity/{s}") for s in _seeds(spec["entities"], spec["queries"])
    ]
    cold, warm, nodes = [], [], []
    for seed in seeds:
        graph.clear_cache()
        start = time.perf_counter()
        nodes.append(graph.subgraph([seed], HOPS, MAX_NODES).num_nodes)
        cold.append((time.perf_counter() - start) * 1000)
    graph.clear_cache()
    for seed in seeds:
        graph.subgraph([seed], HOPS, MAX_NODES)
    before = graph.store.attempts
    for seed in seeds:
        start = time.perf_counter()
        graph.subgraph([seed], HOPS, MAX_NODES)
        warm.append((time.perf_counter() - start) * 1000)
    return {
        "cold": _latency(cold),
        "warm": _latency(warm),
        "mean_nodes": float(np.mean(nodes)),
        "http_requests": graph.store.attempts,
        "warm_http_requests": graph.store.attempts - before,
    }


def op_generate(spec: dict[str, Any]) -> dict[str, Any]:
    info = write_ntriples(Path(spec["nt"]), spec["triples"], spec["entities"], spec["relations"])
    return {"bytes": info.bytes, "max_degree": info.max_degree}


CHILD_OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": op_generate,
    "memory": op_memory,
    "store": op_store,
    "endpoint": op_endpoint,
}


def run_child(op: str, **spec: Any) -> dict[str, Any]:
    """Run ``op`` in a fresh interpreter; return the figures it printed (with its peak RSS)."""
    return kg_load.run_child(op, script=__file__, **spec)


def serve(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``oxigraph serve-read-only`` on a free loopback port, once it answers."""
    cli = Path(sys.executable).with_name("oxigraph")
    if not cli.exists():
        raise SystemExit("the `oxigraph` CLI is missing: `.venv/bin/pip install oxigraph`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(cli), "serve-read-only", "--location", str(store), "--bind", f"127.0.0.1:{port}"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/query"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}?query=ASK%7B%7D", timeout=1).close()
            return server, url
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("oxigraph serve did not answer within 30 s")


def server_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    nt, store = folder / f"bench_{args.triples}t.nt", folder / "store"
    sizes = {"triples": args.triples, "entities": args.entities, "relations": args.relations}
    print(f"generating {args.triples:,} triples -> {nt}", file=sys.stderr)
    figures: dict[str, Any] = {"dataset": run_child("generate", nt=str(nt), **sizes)}
    common = {"entities": args.entities, "queries": args.queries}
    print("in memory: load + subgraphs", file=sys.stderr)
    figures["memory"] = run_child("memory", nt=str(nt), **common)
    print("on-disk store: bulk load", file=sys.stderr)
    figures["store"] = run_child("store", nt=str(nt), store=str(store))
    print(f"endpoint: {args.queries} subgraphs, cold then warm", file=sys.stderr)
    server, url = serve(store)
    try:
        figures["endpoint"] = run_child("endpoint", url=url, **common)
        figures["endpoint"]["server_vm_hwm_mb"] = server_hwm_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def report(figures: dict[str, Any]) -> dict[str, Any]:
    mem, store, ep = figures["memory"], figures["store"], figures["endpoint"]
    rows = {
        "peak RSS, load in memory (MB)": mem["peak_rss_mb"],
        "peak RSS, bulk load into store (MB)": store["peak_rss_mb"],
        "  RSS ratio store / memory": ratio(store["peak_rss_mb"], mem["peak_rss_mb"]),
        "load time in memory (s)": round(mem["load_s"], 2),
        "bulk load time (s)": round(store["load_s"], 2),
        "  time ratio store / memory": ratio(store["load_s"], mem["load_s"]),
        "subgraph median in memory (ms)": round(mem["median_ms"], 3),
        "StoreGraph.subgraph median, endpoint, cold (ms)": round(ep["cold"]["median_ms"], 3),
        "StoreGraph.subgraph median, endpoint, warm (ms)": round(ep["warm"]["median_ms"], 3),
        "  warm target (ms), met": f"<= {WARM_TARGET_MS}, {ep['warm']['median_ms'] <= WARM_TARGET_MS}",
        "HTTP requests of the warm pass": ep.get("warm_http_requests"),
        "  ratio cold / memory": ratio(ep["cold"]["median_ms"], mem["median_ms"]),
        "  ratio warm / memory": ratio(ep["warm"]["median_ms"], mem["median_ms"]),
        "  ratio cold / warm": ratio(ep["cold"]["median_ms"], ep["warm"]["median_ms"]),
        "peak RSS, querying client (MB)": ep["peak_rss_mb"],
        "peak RSS, oxigraph server (MB)": ep["server_vm_hwm_mb"],
    }
    width = max(map(len, rows))
    for name, value in rows.items():
        print(f"{name:<{width}}  {value if value is not None else 'n/a'}")
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--triples", type=int, default=10_000_000, help="file size, labels included")
    p.add_argument("--entities", type=int, help="default: triples / 10")
    p.add_argument("--relations", type=int, default=16)
    p.add_argument("--queries", type=int, default=50, help="subgraphs timed, each way")
    p.add_argument("--workdir", type=Path, help="keep the file and store here")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.entities = args.entities or max(args.triples // 10, 100)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kg_load.run_child_main(args.child, CHILD_OPS)
        return 0
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = measure(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="kgfuse-bench-ts-") as tmp:
            figures = measure(args, Path(tmp))
    rows = report(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                relative_paths(
                    {
                        "args": vars(args) | {"workdir": None, "json": None},
                        "figures": figures,
                        "summary": rows,
                    }
                ),
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
