""".venv/bin/python bench/kg_load.py --json bench/results/kg_load.json
(``make bench`` runs the same command.) Quick run, a few seconds, no rdflib baseline:
.venv/bin/python bench/kg_load.py --triples 100000 --entities 10000 --skip-rdflib

Benchmark of loading, reloading and querying a compiled KG, against pyoxigraph and rdflib.

1. Writes a synthetic N-Triples file: every entity has one ``rdfs:label`` literal, the remaining
   triples are distinct entity-to-entity edges over ``--relations`` predicates, with endpoints
   drawn from a Zipf-like distribution (hubs exist; a node's expected degree is capped at
   ``MAX_DEGREE``). Generation is seeded (``numpy.random.default_rng(0)``): every run sees the
   same file. The same triples are also written as Turtle, as serializers write it (``@prefix``
   lines, prefixed names, each subject once with its predicate-object list after ``;``). Both
   go to ``--workdir``, or to a temporary folder removed at the end.
2. Runs each operation in its own fresh Python process, so the peak RSS it reports
   (``ru_maxrss``, read in the child) belongs to that operation, plus the interpreter and its
   imports (the "child floor" row). Linux carries ``ru_maxrss`` across exec, so the parent stays
   small (the file is generated in a child too); ``vm_hwm_mb`` in the JSON cross-checks it.
   - first load: ``kg.load(file)`` (parse + compile), then ``graph.save(folder)``, timed apart;
     the same for the Turtle file (``kg.load`` only);
   - parser baseline: ``pyoxigraph.parse`` over each file, every quad taken and dropped (what
     the fastest reader that hands triples to Python costs, before anything is done with them);
   - reload: ``kg.open(folder)`` with ``verify=True`` and with ``verify=False``, best of 3;
   - subgraph: 1000 seeded random seeds (after 20 warm-up calls), each timed alone:
     ``graph.subgraph([s], hops=2, max_nodes=128)``;
   - baseline: ``rdflib.Graph().parse(file, format="nt")`` (slow: about a minute per 1M).
3. Prints a table of measures against the targets; ``--json FILE`` writes the same figures
   (paths as file names only).

Rates (triples/s) count every triple of the file, labels included. MB means MiB (2**20 bytes).
The exit code is 0 even when a target is missed: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relpaths import write_report

from kg.files import atomic_file

SEED = 0
IRI_BASE = "http://bench.kgfuse.local/"
RDFS_LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
ZIPF_EXPONENT = 0.9  # weight of the k-th most popular node: 1 / k**ZIPF_EXPONENT
MAX_DEGREE = 1000  # cap on any node's expected degree (edges in both directions)
WRITE_CHUNK = 200_000  # lines per vectorized chunk
SUBGRAPH_SEEDS, SUBGRAPH_WARMUP, SUBGRAPH_SEED = 1000, 20, 1
RELOAD_REPEATS = 3
RESULT_PREFIX = "KGBENCH_RESULT "  # marks the child's JSON line on stdout

# Targets of the issue: (key in the figures, comparison, threshold).
TARGETS: dict[str, tuple[str, float]] = {
    "first_load_triples_per_s": (">=", 500_000.0),
    "first_load_turtle_triples_per_s": (">=", 500_000.0),
    "speedup_vs_rdflib": (">=", 5.0),
    "reload_speedup": (">=", 50.0),
    "first_load_peak_rss_mb": ("<=", 1024.0),
    "reload_peak_rss_mb": ("<=", 1024.0),
    "subgraph_median_ms": ("<=", 2.0),
}


# ------------------------------------------------------------------ synthetic data


@dataclass
class DatasetInfo:
    path: str
    bytes: int
    turtle_path: str  # "" when not written
    turtle_bytes: int
    triples: int
    label_triples: int
    edge_triples: int
    entities: int
    relations: int
    max_degree: int
    mean_degree: float
    generate_s: float


def node_probabilities(n: int, endpoints: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like popularity over ``n`` nodes (shuffled), clipped so no expected degree tops
    ``MAX_DEGREE`` when ``endpoints`` edge ends are drawn."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** ZIPF_EXPONENT
    p = rng.permutation(weights / weights.sum())
    limit = max(MAX_DEGREE, 2 * endpoints / n) / endpoints
    clipped = np.zeros(n, dtype=bool)
    while True:  # clip the hubs, spread their excess over the others, until none exceeds
        over = ~clipped & (p > limit)
        if not over.any():
            return p / p.sum()
        clipped |= over
        p[clipped] = limit
        p[~clipped] *= (1.0 - limit * clipped.sum()) / p[~clipped].sum()


def max_edges(n_entities: int, n_relations: int) -> int:
    """How many distinct edges the generator will draw: a quarter of all possible ones, so
    rejecting repeats stays cheap."""
    return n_entities * (n_entities - 1) * n_relations // 4


def draw_edges(
    n_edges: int, n_entities: int, n_relations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_edges`` distinct (subject, relation, object) triples, no self-loops, in draw order."""
    if n_edges > max_edges(n_entities, n_relations):
        raise ValueError(f"{n_edges} distinct edges do not fit {n_entities} entities")
    p = node_probabilities(n_entities, 2 * n_edges, rng)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_edges:
        size = int((n_edges - len(keys)) * 1.1) + 1000
        s = rng.choice(n_entities, size=size, p=p)
        o = rng.choice(n_entities, size=size, p=p)
        r = rng.integers(0, n_relations, size=size)
        fresh = ((s * n_relations + r) * n_entities + o)[s != o]
        keys = np.concatenate([keys, fresh])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]  # drop repeats, keep the random order
    keys = keys[:n_edges]
    o = keys % n_entities
    r = (keys // n_entities) % n_relations
    s = keys // (n_entities * n_relations)
    return s, r, o


def write_ntriples(
    path: Path, n_triples: int, n_entities: int, n_relations: int, turtle: bool = False
) -> DatasetInfo:
    """Write the benchmark file to ``path`` (atomically) and describe it; with ``turtle`` the
    same triples go to ``path`` with the suffix ``.ttl`` too."""
    if n_triples <= n_entities:
        raise ValueError("need more triples than entities (one label triple per entity)")
    start = time.perf_counter()
    rng = np.random.default_rng(SEED)
    s, r, o = draw_edges(n_triples - n_entities, n_entities, n_relations, rng)
    entity = np.array([f"<{IRI_BASE}entity/{i}>" for i in range(n_entities)], dtype=object)
    relation = np.array([f"<{IRI_BASE}relation/r{j}>" for j in range(n_relations)], dtype=object)
    with atomic_file(path, newline="\n") as f:
        for lo in range(0, n_entities, WRITE_CHUNK):
            ids = np.arange(lo, min(lo + WRITE_CHUNK, n_entities))
            labels = entity[ids] + f' {RDFS_LABEL} "entity ' + ids.astype(str).astype(object)
            f.write("".join((labels + '" .\n').tolist()))
        for lo in range(0, len(s), WRITE_CHUNK):
            hi = lo + WRITE_CHUNK
            lines = entity[s[lo:hi]] + " " + relation[r[lo:hi]] + " " + entity[o[lo:hi]] + " .\n"
            f.write("".join(lines.tolist()))
    ttl = path.with_suffix(".ttl")
    if turtle:
        write_turtle(ttl, s, r, o, n_entities)
    degree = np.bincount(np.concatenate([s, o]), minlength=n_entities)
    return DatasetInfo(
        path=str(path),
        bytes=path.stat().st_size,
        turtle_path=str(ttl) if turtle else "",
        turtle_bytes=ttl.stat().st_size if turtle else 0,
        triples=n_triples,
        label_triples=n_entities,
        edge_triples=len(s),
        entities=n_entities,
        relations=n_relations,
        max_degree=int(degree.max()),
        mean_degree=round(float(degree.mean()), 2),
        generate_s=round(time.perf_counter() - start, 3),
    )


def write_turtle(path: Path, s: np.ndarray, r: np.ndarray, o: np.ndarray, n_entities: int) -> None:
    """The triples of `write_ntriples` as Turtle: prefixes, then each entity's label and its
    outgoing edges in one statement (``;`` between predicate-object pairs)."""
    order = np.argsort(s, kind="stable")
    s, r, o = s[order], r[order], o[order]
    last = np.ones(len(s), dtype=bool)
    last[:-1] = s[1:] != s[:-1]  # the subject's final edge ends the statement
    has_edges = np.bincount(s, minlength=n_entities) > 0
    ids = np.arange(n_entities).astype(str).astype(object)
    label = "ent:" + ids + ' rdfs:label "entity ' + ids + '"'
    label = label + np.where(has_edges, " ;\n", " .\n").astype(object)
    edge = "    rel:r" + r.astype(str).astype(object) + " ent:" + o.astype(str).astype(object)
    edge = edge + np.where(last, " .\n", " ;\n").astype(object)
    # lines sorted by (subject, label first, then edges in order)
    key_subject = np.concatenate([np.arange(n_entities), s])
    key_rank = np.concatenate([np.zeros(n_entities, dtype=np.int64), np.arange(1, len(s) + 1)])
    lines = np.concatenate([label, edge])[np.lexsort((key_rank, key_subject))]
    with atomic_file(path, newline="\n") as f:
        f.write(f"@prefix ent: <{IRI_BASE}entity/> .\n@prefix rel: <{IRI_BASE}relation/> .\n")
        f.write(f"@prefix rdfs: {RDFS_LABEL[:-6]}> .\n\n")
        for lo in range(0, len(lines), WRITE_CHUNK):
            f.write("".join(lines[lo : lo + WRITE_CHUNK].tolist()))


# ------------------------------------------------------------------ child processes


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS).

    Linux carries ru_maxrss across exec, so a child reports at least its parent's peak: the
    parent therefore stays small (it generates the data in a child too) and reports its own peak.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def high_water_mb() -> float | None:
    """VmHWM from /proc (Linux only): this program's own peak, not inherited across exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Fastest of ``repeats`` timed calls; each result is dropped before the next call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        del result
        gc.collect()
    return best


def op_imports(spec: dict[str, Any]) -> dict[str, Any]:
    """The RSS floor of a child: interpreter plus the libraries the other operations import."""
    import pyoxigraph  # noqa: F401
    import safetensors.numpy  # noqa: F401

    import kg  # noqa: F401

    return {}


def op_load(spec: dict[str, Any]) -> dict[str, Any]:
    """First load: parse + compile the file, then save the compiled folder (if one is named)."""
    import kg

    start, cpu = time.perf_counter(), time.process_time()
    graph = kg.load(spec["nt"])
    parsed, cpu = time.perf_counter(), time.process_time() - cpu
    if spec.get("kg_dir"):
        graph.save(spec["kg_dir"])
    saved = time.perf_counter()
    return {
        "parse_compile_s": parsed - start,
        "parse_compile_cpu_s": cpu,
        "save_s": saved - parsed,
        "fingerprint": graph.fingerprint,
        "entities": graph.num_entities,
        "relations": graph.num_relations,
        "edges": graph.num_triples,
        "max_degree": int(graph.degrees().max()),
    }


def op_reload(spec: dict[str, Any]) -> dict[str, Any]:
    """Reload the compiled folder; the best of ``RELOAD_REPEATS`` runs."""
    import kg

    verify = bool(spec["verify"])
    seconds = best_of(RELOAD_REPEATS, lambda: kg.open(spec["kg_dir"], verify=verify))
    return {"seconds": seconds, "verify": verify, "repeats": RELOAD_REPEATS}


def op_subgraph(spec: dict[str, Any]) -> dict[str, Any]:
    """Latency of single-seed 2-hop subgraphs on a reloaded graph."""
    import kg

    graph = kg.open(spec["kg_dir"], verify=False)
    rng = np.random.default_rng(SUBGRAPH_SEED)
    count = min(SUBGRAPH_SEEDS, graph.num_entities)
    seeds = rng.choice(graph.num_entities, size=count, replace=False).tolist()
    for s in seeds[:SUBGRAPH_WARMUP]:
        graph.subgraph([s], hops=2, max_nodes=128)
    millis, nodes, edges = [], [], []
    for s in seeds:
        start = time.perf_counter()
        sub = graph.subgraph([s], hops=2, max_nodes=128)
        millis.append((time.perf_counter() - start) * 1000)
        nodes.append(sub.num_nodes)
        edges.append(sub.num_edges)
    return {
        "calls": count,
        "median_ms": float(np.median(millis)),
        "p95_ms": float(np.percentile(millis, 95)),
        "max_ms": float(np.max(millis)),
        "mean_nodes": float(np.mean(nodes)),
        "mean_edges": float(np.mean(edges)),
    }


def op_oxigraph(spec: dict[str, Any]) -> dict[str, Any]:
    """The parser baseline: pyoxigraph's parser over the file, each quad taken and dropped."""
    import pyoxigraph

    fmt = pyoxigraph.RdfFormat.TURTLE if spec["nt"].endswith(".ttl") else None
    fmt = fmt or pyoxigraph.RdfFormat.N_TRIPLES
    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    for _ in pyoxigraph.parse(path=spec["nt"], format=fmt):
        count += 1
    return {
        "seconds": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "triples": count,
    }


def op_rdflib(spec: dict[str, Any]) -> dict[str, Any]:
    """The baseline: rdflib's in-memory graph parsing the same file."""
    import rdflib

    start = time.perf_counter()
    graph = rdflib.Graph().parse(spec["nt"], format="nt")
    return {"seconds": time.perf_counter() - start, "triples": len(graph)}


def op_generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the benchmark file (in a child, so the parent stays small)."""
    info = write_ntriples(
        Path(spec["nt"]), spec["triples"], spec["entities"], spec["relations"], turtle=True
    )
    return asdict(info)


CHILD_OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": op_generate,
    "imports": op_imports,
    "load": op_load,
    "oxigraph": op_oxigraph,
    "reload": op_reload,
    "subgraph": op_subgraph,
    "rdflib": op_rdflib,
}


def run_child_main(
    spec_json: str, ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None
) -> None:
    """Child side: run one operation (of ``ops``, default this file's) and print its figures
    (with peak RSS) as one JSON line."""
    spec = json.loads(spec_json)
    result = (ops or CHILD_OPS)[spec["op"]](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    result["vm_hwm_mb"] = high_water_mb()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(op: str, script: str | Path = __file__, **spec: Any) -> dict[str, Any]:
    """Parent side: run ``op`` in a fresh interpreter of ``script`` (which hands ``--child
    SPEC`` to `run_child_main`) and return the figures it printed."""
    command = [
        sys.executable,
        str(Path(script).resolve()),
        "--child",
        json.dumps(spec | {"op": op}),
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"benchmark child {op!r} failed (exit {done.returncode}):\n{done.stdout}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


# ------------------------------------------------------------------ figures and report


@dataclass
class Row:
    """One line of the report: a measure, its value, and the target it must meet (if any)."""

    key: str
    measure: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None


def check(key: str, value: float | None) -> tuple[str, bool | None]:
    """The target text for ``key`` and whether ``value`` meets it (None: no target, no value)."""
    if key not in TARGETS:
        return "", None
    op, threshold = TARGETS[key]
    if value is None:
        return f"{op} {threshold:g}", None
    return f"{op} {threshold:g}", value >= threshold if op == ">=" else value <= threshold


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def parse_rows(
    key: str,
    oxigraph_key: str,
    syntax: str,
    n_triples: int,
    load: dict[str, Any],
    oxigraph: dict[str, Any],
) -> list[tuple[str, str, float | None, str]]:
    """The figures of a first load from ``syntax`` (N-Triples or Turtle): time and rate, the
    rate against the target and against pyoxigraph parsing the same file, wall and CPU."""
    rate = ratio(n_triples, load.get("parse_compile_s"))
    oxigraph_rate = ratio(n_triples, oxigraph.get("seconds"))
    target = TARGETS["first_load_triples_per_s"][1]
    return [
        (f"{key}_s", f"first load {syntax}: parse + compile", load.get("parse_compile_s"), "s"),
        (f"{key}_triples_per_s", f"first load {syntax} triples/s", rate, "triples/s"),
        (f"{key}_vs_target", "  ratio to the 500k/s target", ratio(rate, target), "x"),
        (
            f"{oxigraph_key}_triples_per_s",
            f"pyoxigraph parse {syntax} /s",
            oxigraph_rate,
            "triples/s",
        ),
        (f"{key}_vs_oxigraph", "  first load / pyoxigraph parse", ratio(rate, oxigraph_rate), "x"),
        (
            f"{key}_cpu_triples_per_s",
            "  per CPU-second (less sensitive to load)",
            ratio(n_triples, load.get("parse_compile_cpu_s")),
            "triples/s",
        ),
        (
            f"{oxigraph_key}_cpu_triples_per_s",
            "  pyoxigraph parse per CPU-second",
            ratio(n_triples, oxigraph.get("cpu_s")),
            "triples/s",
        ),
    ]


def build_rows(n_triples: int, m: dict[str, dict[str, Any] | None]) -> list[Row]:
    """Every reported figure; ratios use the baselines measured in this same run."""
    load, rdf, floor = m["first_load"] or {}, m["rdflib"] or {}, m["imports"] or {}
    turtle = m["first_load_turtle"] or {}
    ox_nt, ox_ttl = m["oxigraph_nt"] or {}, m["oxigraph_turtle"] or {}
    millions = n_triples / 1e6
    verified, unverified = m["reload_verify"] or {}, m["reload_noverify"] or {}
    sub = m["subgraph"] or {}
    first_s, rdflib_s = load.get("parse_compile_s"), rdf.get("seconds")
    reload_s, noverify_s = verified.get("seconds"), unverified.get("seconds")
    peak_rss = [  # key, what ran, its measurement
        ("imports", "child floor (imports)", floor),
        ("first_load", "first load + save", load),
        ("first_load_turtle", "first load Turtle", turtle),
        ("reload", "reload (verify=True)", verified),
        ("reload_noverify", "reload (verify=False)", unverified),
        ("rdflib", "rdflib parse", rdf),
    ]
    figures: list[tuple[str, str, float | None, str]] = [
        *parse_rows("first_load", "oxigraph_nt", "N-Triples", n_triples, load, ox_nt),
        ("first_load_save_s", "first load: save", load.get("save_s"), "s"),
        *parse_rows("first_load_turtle", "oxigraph_turtle", "Turtle", n_triples, turtle, ox_ttl),
        ("rdflib_s", "rdflib parse", rdflib_s, "s"),
        ("rdflib_triples_per_s", "rdflib triples/s", ratio(n_triples, rdflib_s), "triples/s"),
        ("speedup_vs_rdflib", "first load speed-up vs rdflib", ratio(rdflib_s, first_s), "x"),
        ("reload_s", "reload (verify=True, best of 3)", reload_s, "s"),
        ("reload_triples_per_s", "reload triples/s", ratio(n_triples, reload_s), "triples/s"),
        ("reload_speedup", "reload speed-up vs first load", ratio(first_s, reload_s), "x"),
        ("reload_noverify_s", "reload (verify=False, best of 3)", noverify_s, "s"),
        (
            "reload_noverify_speedup",
            "reload (verify=False) speed-up",
            ratio(first_s, noverify_s),
            "x",
        ),
        *(
            (f"{key}_peak_rss_mb", f"peak RSS: {what}", part.get("peak_rss_mb"), "MB")
            for key, what, part in peak_rss
        ),
        (
            "first_load_peak_rss_mb_per_million",
            "peak RSS: first load + save, per million triples",
            ratio(load.get("peak_rss_mb"), millions),
            "MB",
        ),
        ("subgraph_median_ms", "subgraph 2-hop median", sub.get("median_ms"), "ms"),
        ("subgraph_p95_ms", "subgraph 2-hop p95", sub.get("p95_ms"), "ms"),
        ("subgraph_mean_nodes", "subgraph mean nodes", sub.get("mean_nodes"), ""),
        ("subgraph_mean_edges", "subgraph mean edges", sub.get("mean_edges"), ""),
    ]
    rows = []
    for key, measure, value, unit in figures:
        target, ok = check(key, value)
        rows.append(Row(key, measure, value, unit, target, ok))
    return rows


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "triples/s":
        return f"{value:,.0f} /s"
    if unit == "x":
        return f"{value:,.2f}x"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "MB":
        return f"{value:,.1f} MB"
    return f"{value:,.1f}"


def format_target(target: str, unit: str) -> str:
    if not target:
        return ""
    return f"{target}x" if unit == "x" else f"{target} {unit}".strip()


def format_ok(ok: bool | None, target: str) -> str:
    if not target:
        return ""
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def print_table(rows: list[Row], out: TextIO = sys.stdout) -> None:
    header = ("measure", "value", "target", "ok")
    cells = [
        (
            r.measure,
            format_value(r.value, r.unit),
            format_target(r.target, r.unit),
            format_ok(r.ok, r.target),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    print(line(header), file=out)
    print(line(tuple("-" * w for w in widths)), file=out)
    for c in cells:
        print(line(c), file=out)


def print_verdict(rows: list[Row], out: TextIO = sys.stdout) -> None:
    missed = [r for r in rows if r.ok is False]
    unknown = [r for r in rows if r.target and r.ok is None]
    if missed:
        print(f"\nMISSED {len(missed)} target(s):", file=out)
        for r in missed:
            target = format_target(r.target, r.unit)
            print(f"  - {r.measure}: {format_value(r.value, r.unit)} (target {target})", file=out)
    else:
        print("\nAll measured targets met.", file=out)
    for r in unknown:
        print(f"  (not measured: {r.measure})", file=out)


def build_report(
    args: argparse.Namespace,
    dataset: DatasetInfo,
    measurements: dict[str, dict[str, Any] | None],
    rows: list[Row],
) -> dict[str, Any]:
    return {
        "benchmark": "kg_load",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": {
            "parent_peak_rss_mb": peak_rss_mb(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "parameters": {
            "triples": args.triples,
            "entities": args.entities,
            "relations": args.relations,
            "seed": SEED,
            "zipf_exponent": ZIPF_EXPONENT,
            "max_expected_degree": MAX_DEGREE,
            "skip_rdflib": args.skip_rdflib,
        },
        "dataset": asdict(dataset)
        | {"path": Path(dataset.path).name, "turtle_path": Path(dataset.turtle_path).name},
        "measurements": measurements,
        "figures": {r.key: r.value for r in rows},
        "targets": [
            {
                "measure": r.key,
                "value": r.value,
                "unit": r.unit,
                "op": TARGETS[r.key][0],
                "threshold": TARGETS[r.key][1],
                "ok": r.ok,
            }
            for r in rows
            if r.key in TARGETS
        ],
        "missed": [r.key for r in rows if r.ok is False],
        "all_targets_met": all(r.ok is not False for r in rows),
    }


# ------------------------------------------------------------------ driver


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def work_folder(workdir: Path | None) -> Iterator[Path]:
    """``--workdir`` when given (kept afterwards), else a temporary folder removed at the end."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="kgfuse-bench-") as tmp:
        yield Path(tmp)


def dataset_for(args: argparse.Namespace, folder: Path) -> DatasetInfo:
    path = folder / f"bench_{args.triples}t_{args.entities}e_{args.relations}r_seed{SEED}.nt"
    log(f"generating {args.triples:,} triples ({args.entities:,} entities) -> {path}")
    spec = {"triples": args.triples, "entities": args.entities, "relations": args.relations}
    figures = run_child("generate", nt=str(path), **spec)
    info = DatasetInfo(**{k: figures[k] for k in DatasetInfo.__dataclass_fields__})
    log(f"  {info.bytes / 2**20:,.1f} MiB in {info.generate_s:.1f} s; max degree {info.max_degree}")
    return info


def measure_all(
    args: argparse.Namespace, nt: str, ttl: str, kg_dir: str
) -> dict[str, dict[str, Any] | None]:
    """Every measurement, each operation in its own child process."""
    m: dict[str, dict[str, Any] | None] = {}
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("imports", "imports", {}),
        ("oxigraph_nt", "oxigraph", {"nt": nt}),
        ("first_load", "load", {"nt": nt, "kg_dir": kg_dir}),
        ("oxigraph_turtle", "oxigraph", {"nt": ttl}),
        ("first_load_turtle", "load", {"nt": ttl}),
        ("reload_verify", "reload", {"kg_dir": kg_dir, "verify": True}),
        ("reload_noverify", "reload", {"kg_dir": kg_dir, "verify": False}),
        ("subgraph", "subgraph", {"kg_dir": kg_dir}),
    ]
    if not args.skip_rdflib:
        steps.append(("rdflib", "rdflib", {"nt": nt}))
    for name, op, spec in steps:
        log(f"measuring {name} (fresh process) ...")
        start = time.perf_counter()
        m[name] = run_child(op, **spec)
        log(f"  done in {time.perf_counter() - start:.1f} s: {json.dumps(m[name])}")
    m.setdefault("rdflib", None)
    return m


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark kg.load (parse + compile), kg.open (reload), graph.subgraph and rdflib on a "
            "synthetic, seeded N-Triples file. Each operation runs in a fresh process so its peak "
            "RSS is its own. Prints measures against the targets; exits 0 even if one is missed."
        ),
        epilog="\n".join(
            [
                "targets (ratios use the baselines measured in the same run):",
                *(f"  {key} {op} {threshold:g}" for key, (op, threshold) in TARGETS.items()),
                "",
                "example: .venv/bin/python bench/kg_load.py --json bench/results/kg_load.json",
                "",
                "note `uptime` load beside the figures: they are single-core timings.",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--triples",
        type=int,
        default=1_000_000,
        help="triples in the file, labels included (default 1000000)",
    )
    parser.add_argument(
        "--entities",
        type=int,
        default=100_000,
        help="entities, each with one rdfs:label (default 100000)",
    )
    parser.add_argument(
        "--relations", type=int, default=50, help="entity-to-entity predicates (default 50)"
    )
    parser.add_argument(
        "--skip-rdflib",
        action="store_true",
        help="skip the slow rdflib baseline (its ratio shows n/a)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the generated file and compiled KG here (default: a temp folder, removed)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write every figure, target and verdict to FILE (atomically)",
    )
    parser.add_argument(
        "--child", metavar="SPEC", help=argparse.SUPPRESS
    )  # internal: one operation
    args = parser.parse_args(argv)
    if args.child is None:
        if min(args.triples, args.entities, args.relations) < 1:
            parser.error("--triples, --entities and --relations must be positive")
        if args.triples <= args.entities:
            parser.error("--triples must exceed --entities (each entity has one label triple)")
        if args.triples - args.entities > max_edges(args.entities, args.relations):
            parser.error("too many edges for so few entities and relations; raise --entities")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        run_child_main(args.child)
        return 0
    with work_folder(args.workdir) as folder:
        dataset = dataset_for(args, folder)
        measurements = measure_all(
            args, dataset.path, dataset.turtle_path, str(folder / "compiled_kg")
        )
        loads = (measurements["first_load"] or {}, measurements["first_load_turtle"] or {})
        if loads[0].get("fingerprint") != loads[1].get("fingerprint"):
            raise SystemExit("the N-Triples and Turtle files compiled to different graphs")
    rows = build_rows(args.triples, measurements)
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}: timings are per core")
    print_table(rows)
    print_verdict(rows)
    if args.json is not None:
        write_report(args.json, build_report(args, dataset, measurements, rows))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
