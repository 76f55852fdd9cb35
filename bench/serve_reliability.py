"""The ``reliability`` section of bench/serve.py: the service under faults and hostile input.

Run alone (with its schemathesis run, whose counts it reports), merged into an existing JSON:
``.venv/bin/python bench/serve.py --only reliability --threads 1 --json bench/results/serve.json``

1. Fuzzing: test cases schemathesis generated (bench/serve.py step 4) and 5xx answers seen.
2. Mixed batches: ``MIXED_ROUNDS`` rounds per kind of bad text (a lone surrogate, only invisible
   characters, one character over the limit); each round sends ``MIXED_CLIENTS`` one-text
   requests at once to a server whose micro-batcher waits ``MIXED_WAIT_MS`` to fill a batch,
   one request holding the bad text. Reported: innocent texts answered 200 / innocent texts
   sent, and the statuses the bad requests got (a 422 naming the text is what is required).
3. XML bomb: a "billion laughs" RDF/XML body (``BOMB_LEVELS`` levels of ``BOMB_FANOUT``
   entity references: 3 GB once expanded) POSTed to the admin route ``/v1/kg/triples``. The
   server's RSS (psutil) is sampled every ``RSS_EVERY_S`` from before the request until its
   answer; reported: the largest growth in MiB and the answer's status. A server that grows
   past ``BOMB_RSS_CAP_MB`` is killed (the figure is then at least the cap).
4. Large insert: the p99 latency of one closed-loop client (one-text predictions) for
   ``--insert-baseline-s``, then of the same client from the moment a POST /v1/kg/triples
   adding ``--insert-entities`` new product models (a label, a type and a product line each)
   is sent until it is answered; their ratio (target <= 2). Then the time from starting the
   server to ``/ready`` (fastest of ``RESTARTS``) without hot triples, with them and their
   feature cache, and with them but the cache removed (every added entity embedded again).
5. Corrupted bundles: for each file of the fused bundle (but the adapter's README), a copy with
   the lowest bit of its middle byte flipped, loaded with ``fusion.bundle.load_bundle``; a load
   that raises ``BundleError`` is refused, anything else (loading, another error) is not.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as bench  # bench/serve.py: statistics, clients, server helpers

MIXED_ROUNDS, MIXED_CLIENTS, MIXED_WAIT_MS = 10, 8, 50
BOMB_LEVELS, BOMB_FANOUT, BOMB_RSS_CAP_MB, BOMB_TIMEOUT_S = 9, 10, 2048, 120.0
RSS_EVERY_S = 0.02
INSERT_TIMEOUT_S = 900.0
RESTARTS = 2  # starts per restart figure; the fastest counts (interference only slows one)
DEMO_KG = bench.REPO / "data" / "demo" / "kg.ttl"
JSON = {"content-type": "application/json"}


# ------------------------------------------------------------------ 2. mixed batches


def bad_texts(max_chars: int) -> dict[str, str]:
    return {
        "lone surrogate": "my earbuds \ud800 crackle",
        "only invisible characters": "\u200b\u00a0\u200b",
        "one character too long": "a" * (max_chars + 1),
    }


async def mixed_batches(url: str, texts: list[str], max_chars: int) -> dict[str, Any]:
    """Rounds of concurrent requests, one holding a bad text: how many innocent ones got 200."""
    sent = answered = 0
    bad_status: dict[str, Counter[str]] = {}
    async with bench.make_client(MIXED_CLIENTS) as client:
        for kind, bad in bad_texts(max_chars).items():
            statuses: Counter[str] = Counter()
            for r in range(MIXED_ROUNDS):
                bodies = [
                    [texts[(r * MIXED_CLIENTS + i) % len(texts)]] for i in range(MIXED_CLIENTS)
                ]
                culprit = r % MIXED_CLIENTS
                bodies[culprit] = [bad]
                posts = [
                    client.post(f"{url}/v1/predict", content=json.dumps({"texts": b}), headers=JSON)
                    for b in bodies
                ]
                answers = await asyncio.gather(*posts, return_exceptions=True)
                for i, answer in enumerate(answers):
                    status = (
                        type(answer).__name__
                        if isinstance(answer, Exception)
                        else str(answer.status_code)
                    )
                    if i == culprit:
                        statuses[status] += 1
                    else:
                        sent += 1
                        answered += status == "200"
            bad_status[kind] = statuses
    print(
        f"  mixed batches: {answered}/{sent} innocent texts answered; bad: {bad_status}", flush=True
    )
    return {
        "rounds_per_kind": MIXED_ROUNDS,
        "clients_per_round": MIXED_CLIENTS,
        "batch_wait_ms": MIXED_WAIT_MS,
        "innocent_sent": sent,
        "innocent_answered": answered,
        "innocent_answered_share": bench.ratio(answered, sent),
        "bad_request_statuses": {k: dict(v) for k, v in bad_status.items()},
    }


# ------------------------------------------------------------------ 3. XML bomb


def xml_bomb(levels: int = BOMB_LEVELS, fanout: int = BOMB_FANOUT) -> str:
    """Billion laughs in RDF/XML: entity ``lol<n>`` holds ``fanout`` references to ``lol<n-1>``;
    the one label literal expands to 3 * fanout ** levels characters."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * fanout}">' for i in range(1, levels + 1)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n' + "\n".join(entities) + "\n]>\n"
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
        f'<rdf:Description rdf:about="http://example.org/bomb"><rdfs:label>&lol{levels};'
        "</rdfs:label></rdf:Description>\n</rdf:RDF>\n"
    )


class RssWatch:
    """Samples a process's RSS on a thread; kills it past ``cap_mb`` of growth."""

    def __init__(self, pid: int, cap_mb: float):
        self.process = psutil.Process(pid)
        self.start = self.peak = self._rss()
        self.cap = cap_mb * 2**20
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _watch(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            try:
                self.peak = max(self.peak, self._rss())
            except psutil.Error:
                return
            if self.peak - self.start > self.cap:
                self.killed = True
                self.process.kill()
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def xml_bomb_growth(server: bench.Server, key: str) -> dict[str, Any]:
    """POST the bomb as RDF/XML; the server's largest RSS growth until it answered."""
    body = xml_bomb()
    headers = {"content-type": "application/rdf+xml", "Authorization": f"Bearer {key}"}
    with RssWatch(server.process.pid, BOMB_RSS_CAP_MB) as watch:
        started = time.perf_counter()
        try:
            r = httpx.post(
                f"{server.url}/v1/kg/triples", content=body, headers=headers, timeout=BOMB_TIMEOUT_S
            )
            status: str = str(r.status_code)
        except httpx.HTTPError as e:
            status = type(e).__name__
        seconds = time.perf_counter() - started
    print(
        f"  XML bomb: +{watch.growth_mb:.0f} MiB RSS, answer {status}, killed {watch.killed}",
        flush=True,
    )
    return {
        "levels": BOMB_LEVELS,
        "fanout": BOMB_FANOUT,
        "body_bytes": len(body.encode()),
        "expanded_chars": 3 * BOMB_FANOUT**BOMB_LEVELS,
        "max_rss_growth_mib": round(watch.growth_mb, 1),
        "killed_at_cap_mib": BOMB_RSS_CAP_MB if watch.killed else None,
        "answer": status,
        "seconds": round(seconds, 3),
    }


# ------------------------------------------------------------------ 4. large insert


def insert_body(entities: int) -> str:
    """Turtle adding ``entities`` new product models, each in one of the demo's product lines."""
    lines = re.findall(r"^line:(\w+) a shop:ProductLine", DEMO_KG.read_text(encoding="utf-8"), re.M)
    out = [
        "@prefix shop: <http://example.org/shopkg/> .",
        "@prefix line: <http://example.org/shopkg/line/> .",
        "@prefix model: <http://example.org/shopkg/model/> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
    ]
    for i in range(entities):
        out.append(
            f'model:bench_{i} a shop:ProductModel ; rdfs:label "Bench model {i}" ; '
            f"shop:inLine line:{lines[i % len(lines)]} ."
        )
    return "\n".join(out) + "\n"


async def latencies_until(
    client: httpx.AsyncClient, url: str, texts: list[str], done: Callable[[], bool]
) -> bench.Measurement:
    """One closed-loop client sending one-text predictions until ``done()``."""
    m = bench.Measurement("fused", 1, False)
    started, i = time.perf_counter(), 0
    while not done():
        m.record(
            *await bench.one_request(client, url, bench.predict_body(texts[i % len(texts)], False))
        )
        i += 1
    m.seconds = time.perf_counter() - started
    return m


async def insert_under_load(url: str, key: str, texts: list[str], args: Any) -> dict[str, Any]:
    """p99 of one client before, then during, a large hot-triples insert."""
    body = insert_body(args.insert_entities)
    headers = {"content-type": "text/turtle", "Authorization": f"Bearer {key}"}
    async with bench.make_client(2) as client:
        await bench.warm_up(client, url, texts, explain=False)
        deadline = time.perf_counter() + args.insert_baseline_s
        normal = await latencies_until(client, url, texts, lambda: time.perf_counter() > deadline)
        timeout = httpx.Timeout(INSERT_TIMEOUT_S)
        started = time.perf_counter()
        insert = asyncio.create_task(
            client.post(f"{url}/v1/kg/triples", content=body, headers=headers, timeout=timeout)
        )
        during = await latencies_until(client, url, texts, insert.done)
        answer = await insert
        seconds = time.perf_counter() - started
    n, d = normal.summary(), during.summary()
    result = {
        "entities": args.insert_entities,
        "body_bytes": len(body.encode()),
        "insert_status": answer.status_code,
        "insert_answer": answer.json()
        if answer.status_code != 200
        else {k: v for k, v in answer.json().items() if k != "kg"},
        "insert_s": round(seconds, 3),
        "normal": {k: n[k] for k in ("requests_ok", "p50_ms", "p99_ms", "errors")},
        "during_insert": {
            k: d[k] for k in ("requests_ok", "p50_ms", "p99_ms", "errors", "error_kinds")
        },
        "p99_ratio": bench.ratio(d["p99_ms"], n["p99_ms"]),
    }
    print(
        f"  insert of {args.insert_entities} entities: {seconds:.1f} s, status {answer.status_code}, p99 {d['p99_ms'] or 0:.1f} ms vs {n['p99_ms'] or 0:.1f} ms normal",
        flush=True,
    )
    return result


def ready_seconds(bundle: Path, port: int, args: Any, hot: Path) -> float:
    """Seconds from starting ``kgfuse serve`` with hot triples in ``hot`` to its ``/ready``."""
    started = time.perf_counter()
    with bench.serve(bundle, port, args.threads, ("--hot-triples-dir", str(hot))):
        return time.perf_counter() - started


def restarts(bundle: Path, port: int, args: Any, hot: Path) -> dict[str, Any]:
    """The fastest of ``RESTARTS`` starts to ``/ready`` each: without hot triples, with the
    insert's and their feature cache, and with them but the cache removed before each start."""
    times: dict[str, list[float]] = {"without_hot_triples": [], "cached": [], "cache_removed": []}
    empty = hot.with_name("empty")
    for _ in range(RESTARTS):
        times["without_hot_triples"].append(ready_seconds(bundle, port, args, empty))
        times["cached"].append(ready_seconds(bundle, port, args, hot))
        shutil.rmtree(hot / "features", ignore_errors=True)
        times["cache_removed"].append(ready_seconds(bundle, port, args, hot))
    out = {f"ready_s_{k}": round(min(v), 3) for k, v in times.items()}
    print(f"  restarts (fastest of {RESTARTS}): {out}", flush=True)
    return {**out, "starts_each": RESTARTS}


# ------------------------------------------------------------------ 5. corrupted bundles


def flip_middle_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def corrupted_loads(bundle: Path) -> dict[str, Any]:
    """One bit flipped per bundle file, one load each: refused (BundleError) or not."""
    from fusion.bundle import BundleError, load_bundle

    files = sorted(
        p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file() and p.name != "README.md"
    )
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-corrupt-") as tmp:
        for name in files:
            copy = Path(tmp) / "bundle"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(bundle, copy)
            flip_middle_bit(copy / name)
            try:
                load_bundle(copy)
                outcomes[str(name)] = "loaded"
            except BundleError:
                outcomes[str(name)] = "refused"
            except Exception as e:  # not a BundleError: a crash, not a refusal
                outcomes[str(name)] = f"error: {type(e).__name__}"
    refused = sum(o == "refused" for o in outcomes.values())
    print(f"  corrupted bundles: {refused}/{len(outcomes)} refused: {outcomes}", flush=True)
    return {"tried": len(outcomes), "refused": refused, "outcomes": outcomes}


# ------------------------------------------------------------------ the section


def fuzzing(st: dict[str, Any] | None) -> dict[str, Any]:
    if not st:
        return {"test_cases": None, "server_errors_seen": None}
    return {
        "test_cases": st.get("test_cases"),
        "server_errors_seen": sum(f.get("count") or 0 for f in st.get("failures", [])),
        "operations_with_5xx": st.get("server_error_operations"),
    }


def run_reliability(
    bundle: Path, port: int, args: Any, st: dict[str, Any] | None
) -> dict[str, Any]:
    """Every figure of the section, each on its own server (a bomb may kill one)."""
    texts = bench.read_texts()
    key = secrets.token_hex(16)
    out: dict[str, Any] = {"fuzzing": fuzzing(st)}
    with tempfile.TemporaryDirectory(prefix="bench-serve-rel-") as tmp:
        hot = Path(tmp) / "hot-triples"
        with bench.serve(
            bundle, port, args.threads, ("--max-wait-ms", str(MIXED_WAIT_MS))
        ) as server:
            print(f"reliability on {server.url}: mixed batches", flush=True)
            max_chars = httpx.get(f"{server.url}/v1/model").json()["limits"]["max_chars"]
            out["mixed_batches"] = asyncio.run(mixed_batches(server.url, texts, max_chars))
        extra = ("--hot-triples-dir", str(hot))
        with bench.serve(bundle, port + 1, args.threads, extra, admin_key=key) as server:
            print(f"reliability on {server.url}: large insert", flush=True)
            out["large_insert"] = asyncio.run(insert_under_load(server.url, key, texts, args))
        out["large_insert"]["restart"] = restarts(bundle, port + 1, args, hot)
        with bench.serve(
            bundle,
            port + 2,
            args.threads,
            ("--hot-triples-dir", str(Path(tmp) / "bomb")),
            admin_key=key,
        ) as server:
            print(f"reliability on {server.url}: XML bomb", flush=True)
            out["xml_bomb"] = xml_bomb_growth(server, key)
    out["corrupted_bundles"] = corrupted_loads(bundle)
    return out


def summary(rel: dict[str, Any] | None) -> dict[str, Any]:
    """The five figures of the issue, from a section (None: not measured)."""
    rel = rel or {}
    mixed, bomb = rel.get("mixed_batches", {}), rel.get("xml_bomb", {})
    insert, corrupt = rel.get("large_insert", {}), rel.get("corrupted_bundles", {})
    return {
        "fuzz_cases": rel.get("fuzzing", {}).get("test_cases"),
        "fuzz_5xx": rel.get("fuzzing", {}).get("server_errors_seen"),
        "innocent_answered": mixed.get("innocent_answered"),
        "innocent_sent": mixed.get("innocent_sent"),
        "bomb_rss_growth_mib": bomb.get("max_rss_growth_mib"),
        "insert_p99_ratio": insert.get("p99_ratio"),
        "corrupt_refused": corrupt.get("refused"),
        "corrupt_tried": corrupt.get("tried"),
    }
