"""What `kgfuse compare` reports: a record per run, the summary over seeds, the table, the JSON.

`fusion.compare.compare` trains the runs and builds the report from these; `print_report` and
`write_json` are what the CLI calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from kg import files

if TYPE_CHECKING:
    from fusion.train import TrainResult

METRICS = ("accuracy", "macro_f1", "ece", "nll")  # what each run's record keeps, per split

console = Console()


def record(
    variant: str,
    seed: int,
    result: TrainResult | None,
    metrics: dict[str, dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """One run's row of the report: its metrics (those in `METRICS`), timings and choices;
    ``result`` is None for the reference, which trains nothing."""
    return {
        "variant": variant,
        "seed": seed,
        "bundle": str(result.bundle) if result is not None else None,
        "metrics": {k: {m: v[m] for m in METRICS if m in v} for k, v in metrics.items()},
        "seconds_per_epoch": result.seconds_per_epoch if result is not None else 0.0,
        "epochs": result.epochs_run if result is not None else 0,
        "best_epoch": result.best_epoch if result is not None else 0,
        "temperature": result.temperature if result is not None else None,
        "choices": result.choices if result is not None else {},
        "seconds": seconds,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Variant name -> its seeds, mean timings, and the mean and std of each split's metrics."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == name]
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in mine],
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in mine])),
            "seconds": float(np.mean([r["seconds"] for r in mine])),
        }
        for split in mine[0]["metrics"]:
            for metric in METRICS:
                values = [r["metrics"][split].get(metric) for r in mine if split in r["metrics"]]
                values = [v for v in values if v is not None]
                if values:
                    entry[f"{split}/{metric}"] = {
                        "mean": float(np.mean(values)),
                        "std": float(np.std(values)),
                    }
        out[name] = entry
    return out


def _cell(entry: dict[str, Any], key: str) -> str:
    if key not in entry:
        return "-"
    m = entry[key]
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if len(entry["seeds"]) > 1 else f"{m['mean']:.3f}"


def print_report(report: dict[str, Any]) -> None:
    """One table, mean ± std over seeds: val:unseen accuracy, every test set's accuracy and
    macro-F1, the last test set's ECE, seconds per epoch and their ratio to text alone; then
    the explanation faithfulness."""
    summary = report["summary"]
    keys = {k.rsplit("/", 1)[0] for e in summary.values() for k in e if k.endswith("/accuracy")}
    tests = sorted(k for k in keys if k.startswith("test:"))
    last = tests[-1] if tests else None
    table = Table(
        "model",
        "val:unseen acc",
        *(f"{s} acc" for s in tests),
        *(f"{s} F1" for s in tests),
        *([f"{last} ECE"] if last else []),
        "s/epoch",
        "x text",
    )
    text_time = summary.get("text", {}).get("seconds_per_epoch") or float("nan")
    for name, entry in summary.items():
        table.add_row(
            name,
            _cell(entry, "val:unseen/accuracy"),
            *(_cell(entry, f"{s}/accuracy") for s in tests),
            *(_cell(entry, f"{s}/macro_f1") for s in tests),
            *([_cell(entry, f"{last}/ece")] if last else []),
            f"{entry['seconds_per_epoch']:.1f}" if entry["seconds_per_epoch"] else "-",
            f"{entry['seconds_per_epoch'] / text_time:.2f}" if entry["seconds_per_epoch"] else "-",
        )
    console.print(table)
    if "faithfulness" in report:
        f = report["faithfulness"]
        console.print(
            f"explanations on {f['test']} ({f['texts']} texts, top {f['top_k']} paths, log-odds): "
            f"comprehensiveness {f['comp']:.3f} against {f['comp_random']:.3f} for random walks "
            f"({f['ratio']:.1f}x); the top path alone {f['comp_top1']:.3f} against "
            f"{f['comp_top1_random']:.3f} ({f['ratio_top1']:.1f}x); sufficiency {f['suff']:.3f} "
            f"against {f['suff_random']:.3f}"
        )


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as JSON, atomically (kg/files.py)."""
    files.write_json(path, report)
