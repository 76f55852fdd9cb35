""".venv/bin/python bench/export.py --json bench/results/export.json

The serving exports side by side: the trained bundle, ``kgfuse export`` (LoRA merged),
``--int8`` and ``--onnx`` (the encoder on ONNX Runtime), on the same test file.

Exports the bundle three ways into a temporary folder, loads all four in this process with
``--threads`` torch (and ONNX Runtime) threads, and measures each on ``--data``:

- accuracy and macro-F1 (the same prepared texts for all four: linking is not what differs);
- one-text latency: every text predicted alone (``Predictor.predict([text])``, what one client
  of the service costs), the four bundles in turn for each text, so a change in the machine's
  load falls on all of them alike; p50 and p95 in ms;
- batch throughput: texts/s predicting the file in batches of 32 (what a busy server does).

Prints a table with each figure as a ratio to the trained bundle, and names the fastest export
whose accuracy is within ``--tolerance`` of the trained bundle's. ``uptime`` load is recorded:
the machine is shared, so compare ratios, not absolute times, across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the kgfuse CLI does, before torch

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from fusion.evaluate import evaluate  # noqa: E402
from fusion.export import export_bundle  # noqa: E402
from fusion.predict import Predictor  # noqa: E402

KINDS = {"trained": {}, "merged": {}, "int8": {"int8": True}, "onnx": {"onnx": True}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latencies(predictors: dict[str, Predictor], texts: list[str]) -> dict[str, list[float]]:
    """Each text predicted alone by each bundle in turn (the order rotates per text)."""
    out: dict[str, list[float]] = {name: [] for name in predictors}
    names = list(predictors)
    for i, text in enumerate(texts):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            predictors[name].predict([text])
            out[name].append((time.perf_counter() - started) * 1e3)
    return out


def throughput(predictor: Predictor, texts: list[str], batch: int = 32) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        predictor.predict(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo" / "fused" / "bundle")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "demo" / "test_unseen.csv")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads")
    parser.add_argument("--tolerance", type=float, default=0.005, help="equal accuracy: within")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folders = {"trained": args.bundle}
        for name, flags in KINDS.items():
            if flags or name == "merged":
                folders[name] = export_bundle(args.bundle, Path(tmp) / name, **flags)
        predictors = {name: Predictor.from_dir(folder) for name, folder in folders.items()}
        sizes = {name: _size_mb(folder) for name, folder in folders.items()}
        prepared = next(iter(predictors.values())).resources.prepare_file(args.data)
        texts = [p.text for p in prepared]
        for p in predictors.values():  # warm-up: first calls allocate
            p.predict(texts[:8])
        ms = latencies(predictors, texts)
        rows = []
        for name, predictor in predictors.items():
            metrics = evaluate(predictor.model, predictor.resources, prepared)
            rows.append(
                {
                    "bundle": name,
                    "accuracy": metrics["accuracy"],
                    "macro_f1": metrics["macro_f1"],
                    "p50_ms": percentile(ms[name], 50),
                    "p95_ms": percentile(ms[name], 95),
                    "texts_per_s_batch32": throughput(predictor, texts),
                    "size_mb": sizes[name],
                }
            )
    base = rows[0]
    for row in rows:
        row["p50_vs_trained"] = row["p50_ms"] / base["p50_ms"]
        row["throughput_vs_trained"] = row["texts_per_s_batch32"] / base["texts_per_s_batch32"]
        row["accuracy_change"] = row["accuracy"] - base["accuracy"]
    equal = [r for r in rows if abs(r["accuracy_change"]) <= args.tolerance]
    fastest = min(equal, key=lambda r: r["p50_ms"])["bundle"]
    print_table(rows, fastest)
    report = {
        "benchmark": "export",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "bundle": os.path.relpath(args.bundle, REPO),
        "data": os.path.relpath(args.data, REPO),
        "texts": len(texts),
        "rows": rows,
        "fastest_at_equal_accuracy": fastest,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 1)


def print_table(rows: list[dict[str, Any]], fastest: str) -> None:
    table = Table(
        "bundle",
        "accuracy",
        "macro-F1",
        "p50 ms",
        "p95 ms",
        "texts/s (32)",
        "MB",
        "p50 / trained",
        "texts/s / trained",
    )
    for r in rows:
        table.add_row(
            r["bundle"],
            f"{r['accuracy']:.3f}",
            f"{r['macro_f1']:.3f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['texts_per_s_batch32']:.1f}",
            f"{r['size_mb']:.1f}",
            f"{r['p50_vs_trained']:.2f}",
            f"{r['throughput_vs_trained']:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(f"fastest at equal accuracy (one text, p50): {fastest}")


if __name__ == "__main__":
    main()
