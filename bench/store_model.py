""".venv/bin/python bench/store_model.py --json bench/results/store_model.json

A model trained and served over a triple store, against the same model over the compiled KG
(the baseline), on the embedded demo data (configs/demo.yaml, data/demo/).

1. Loads data/demo/kg.ttl into an on-disk Oxigraph store and serves it read-only with
   ``oxigraph serve`` on loopback.
2. Trains configs/demo.yaml twice with the same seed and overrides: ``kg.files`` (baseline) and
   ``kg.endpoint=URL``; reports the wall time of each run, its time per epoch and its metrics.
3. Loads both bundles and predicts every test text one at a time, twice over the store (first
   with the store's caches empty, then warm): latency per text (median, p95), and how many
   labels, links and top paths agree with the baseline.

``--epochs`` (default 2) keeps it to a few minutes; the figures are the store's cost, not the
model's accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from relpaths import write_report  # noqa: E402
from triplestore import serve  # noqa: E402


def _train(overrides: list[str]) -> tuple[Path, dict[str, Any]]:
    from fusion.train import main as train

    started = time.perf_counter()
    result = train(REPO / "configs" / "demo.yaml", overrides, progress=False)
    return Path(result.bundle), {
        "wall_s": round(time.perf_counter() - started, 1),
        "s_per_epoch": round(result.seconds_per_epoch, 1),
        "metrics": {
            split: {k: round(v, 4) for k, v in m.items() if k in ("accuracy", "macro_f1")}
            for split, m in result.metrics.items()
        },
    }


def _predict_each(predictor: Any, texts: list[str]) -> tuple[list[dict[str, Any]], list[float]]:
    records: list[dict[str, Any]] = []
    millis: list[float] = []
    for text in texts:
        started = time.perf_counter()
        found = predictor.predict([text], explain_paths=True, top_k_paths=1)
        records.extend(p.model_dump() for p in found)
        millis.append((time.perf_counter() - started) * 1e3)
    return records, millis


def _latency(millis: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(float(np.median(millis)), 2),
        "p95_ms": round(float(np.percentile(millis, 95)), 2),
    }


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _agreement(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, float]:
    def links(r: dict[str, Any]) -> list[tuple[int, int, str]]:
        return [(e["start"], e["end"], e["iri"]) for e in r["entities"]]

    def top_path(r: dict[str, Any]) -> str:
        return r["paths"][0]["text"] if r.get("paths") else ""

    n = len(a)
    return {
        "texts": n,
        "same_label": sum(x["label"] == y["label"] for x, y in zip(a, b, strict=True)) / n,
        "same_links": sum(links(x) == links(y) for x, y in zip(a, b, strict=True)) / n,
        "same_top_path": sum(top_path(x) == top_path(y) for x, y in zip(a, b, strict=True)) / n,
        "max_probability_gap": max(
            abs(x["probabilities"][k] - y["probabilities"][k])
            for x, y in zip(a, b, strict=True)
            for k in x["probabilities"]
        ),
    }


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from fusion.config import load_config
    from fusion.data import read_examples
    from fusion.predict import Predictor
    from kg.triplestore_load import bulk_load

    store = folder / "store"
    bulk_load([REPO / "data" / "demo" / "kg.ttl"], store)
    server, url = serve(store)
    common = [f"train.epochs={args.epochs}", "train.threads=1", "train.patience=100"]
    try:
        print("training over the compiled KG (baseline)", file=sys.stderr)
        memory_bundle, memory = _train([*common, f"output={folder / 'memory'}"])
        print(f"training over the endpoint {url}", file=sys.stderr)
        store_bundle, over_store = _train(
            [*common, f"output={folder / 'store-run'}", "kg.files=[]", f"kg.endpoint={url}"]
        )
        config = load_config(REPO / "configs" / "demo.yaml")
        texts = [
            e.text
            for path in config.data.tests.values()
            for e in read_examples(path, config.data.text_column, config.data.label_column)
        ][: args.texts]
        print(f"predicting {len(texts)} texts one at a time", file=sys.stderr)
        baseline, memory_ms = _predict_each(Predictor.from_dir(memory_bundle), texts)
        remote = Predictor.from_dir(store_bundle)
        cold, cold_ms = _predict_each(remote, texts)
        warm, warm_ms = _predict_each(remote, texts)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "kg": "data/demo/kg.ttl",
        "epochs": args.epochs,
        "training": {"memory": memory, "endpoint": over_store},
        "prediction_latency": {
            "memory": _latency(memory_ms),
            "endpoint_cold": _latency(cold_ms),
            "endpoint_warm": _latency(warm_ms),
        },
        "agreement": _agreement(baseline, cold),
        "warm_agrees_with_cold": _agreement(cold, warm),
        "bundle_kg_bytes": {
            "memory": _folder_bytes(memory_bundle / "kg"),
            "endpoint": _folder_bytes(store_bundle / "kg"),
        },
    }


def report(figures: dict[str, Any]) -> None:
    t = figures["training"]
    lat = figures["prediction_latency"]
    base = lat["memory"]["median_ms"]
    print(
        f"training ({figures['epochs']} epochs): compiled {t['memory']['wall_s']} s, "
        f"over the endpoint {t['endpoint']['wall_s']} s "
        f"({t['endpoint']['wall_s'] / t['memory']['wall_s']:.2f}x); s/epoch "
        f"{t['memory']['s_per_epoch']} vs {t['endpoint']['s_per_epoch']}"
    )
    for split in t["memory"]["metrics"]:
        print(
            f"  {split}: compiled {t['memory']['metrics'][split]}, "
            f"endpoint {t['endpoint']['metrics'][split]}"
        )
    for name, v in lat.items():
        print(
            f"predict + explain, one text: {name:14s} median {v['median_ms']:8.2f} ms "
            f"p95 {v['p95_ms']:8.2f} ms ({v['median_ms'] / base:.1f}x the compiled KG)"
        )
    print(f"agreement with the compiled KG: {figures['agreement']}")
    print(f"bundle kg/ bytes: {figures['bundle_kg_bytes']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--texts", type=int, default=1000, help="test texts to predict (at most)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kgfuse-store-model-") as tmp:
        figures = measure(args, Path(tmp))
    report(figures)
    if args.json:
        write_report(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
