""".venv/bin/python bench/export.py --json bench/results/export.json

The serving exports side by side: the trained bundle, ``kgfuse export`` (LoRA merged),
``--prune``, ``--int8``, ``--prune --int8`` and ``--onnx`` (the encoder on ONNX Runtime), on the
same test file.

Exports the bundle five ways into a temporary folder, loads all six in this process with
``--threads`` torch (and ONNX Runtime) threads, and measures each on ``--data``:

- accuracy and macro-F1 (the same prepared texts for all four: linking is not what differs);
- one-text latency: every text predicted alone (``Predictor.predict([text])``, what one client
  of the service costs), the four bundles in turn for each text, so a change in the machine's
  load falls on all of them alike; p50 and p95 in ms;
- batch throughput: texts/s predicting the file in batches of 32 (what a busy server does).

Prints a table with each figure as a ratio to the trained bundle and to the merged export
(size, p50), and names the fastest export whose accuracy is within ``--tolerance`` of the
trained bundle's.

``--sweep`` first chooses pruning amounts on validation, never on ``--data``: the validation
texts the bundle was trained with (its ``data.val`` file, or the texts training carved out of
``data.train`` by held-out entity, carved again the same way and checked against the counts in
bundle.json), scored by the merged encoder pruned in memory at each amount of a grid
(`SWEEP`), by weight norms and by activations on those texts (``--prune-data``): validation
accuracy, and the mean cosine between the pruned and unpruned encoders' pooled vectors of the
same texts. Accuracy alone cannot choose where the KG branch decides every validation text (the
demo's): it would pick the grid's end. So the choice is the most pruning by weight norms (the
default rule; fewest encoder parameters) whose validation accuracy is within ``--tolerance`` of
the unpruned one's and whose text vectors keep a mean cosine of ``--min-cosine`` or more. It is
printed and measured as the ``pruned`` rows; without ``--sweep`` those rows use
``--prune-heads``/``--prune-ffn`` (kgfuse's defaults). ``uptime`` load is recorded:
the machine is shared, so compare ratios, not absolute times, across runs.
"""

from __future__ import annotations

import argparse
import copy
import csv
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
from timing import percentile  # noqa: E402  (bench/timing.py)

from fusion.auto import holdout_candidates  # noqa: E402
from fusion.config import config_from_dict  # noqa: E402
from fusion.data import Example  # noqa: E402
from fusion.evaluate import evaluate  # noqa: E402
from fusion.export import export_bundle  # noqa: E402
from fusion.predict import Predictor  # noqa: E402
from fusion.prune import (  # noqa: E402
    DEFAULT_FFN,
    DEFAULT_HEADS,
    activation_scores,
    apply_plan,
    plan_pruning,
)
from fusion.setup import load_data  # noqa: E402
from fusion.split import validation_split  # noqa: E402

# (heads, FFN rows) fractions to remove that --sweep scores on validation
SWEEP = [(h, f) for h in (0.0, 0.125, 0.25, 0.5, 0.75) for f in (0.0, 0.125, 0.25, 0.5, 0.75)]


def kinds(prune: tuple[float, float]) -> dict[str, dict[str, Any]]:
    """Each export measured, by name, with its `export_bundle` arguments."""
    return {
        "trained": {},
        "merged": {},
        "pruned": {"prune": prune},
        "int8": {"int8": True},
        "pruned+int8": {"prune": prune, "int8": True},
        "onnx": {"onnx": True},
    }


def validation_examples(predictor: Predictor) -> list[Example]:
    """The bundle's validation texts: its ``data.val`` file, or carved out of ``data.train`` as
    training carved them (`fusion.setup.plan_run`), checked against bundle.json's counts."""
    meta, resources = predictor.meta, predictor.resources
    config = config_from_dict(meta["config"], "bundle.json")
    splits = load_data(config)
    if splits.val:
        return splits.val
    spans = resources.link([e.text for e in splits.train])
    ids = [resources.entity_ids(s) for s in spans]
    graph = resources.graph
    candidates, _ = holdout_candidates(graph, resources.label_nodes, ids, config.data.holdout_types)
    split = validation_split(
        splits.train,
        [[s["iri"] for s in text] for text in spans],
        config.data.val_fraction,
        config.data.val_seen_fraction,
        config.train.seed,
        {graph.iri(e) for e in candidates},
    )
    counts = meta.get("training", {}).get("counts", {})
    got = {"val:unseen": len(split.unseen), "val:seen": len(split.seen)}
    if any(counts.get(k) != n for k, n in got.items()):
        raise SystemExit(f"carved validation {got} differs from the bundle's {counts}")
    return split.unseen + split.seen


def sweep(merged: Predictor, val_file: Path, tolerance: float, min_cosine: float) -> dict[str, Any]:
    """Each amount of `SWEEP`, pruned in memory from the merged model by weight norms and by
    activations on the validation texts: validation accuracy, and how close the pooled text
    vectors stay to the unpruned encoder's (mean cosine on the same texts)."""
    prepared = merged.resources.prepare_file(val_file)
    texts = [p.text for p in prepared]
    encoder = merged.model.text_encoder
    assert encoder is not None
    batch = encoder.tokenize(texts)
    with torch.no_grad():
        reference = encoder(batch["input_ids"], batch["attention_mask"])
    rules = {"weight-norm": None, "activations": (activation_scores(encoder, texts), "val")}
    rows = []
    for rule, scores in rules.items():
        for heads, ffn in SWEEP:
            model = copy.deepcopy(merged.model)
            assert model.text_encoder is not None
            plan = plan_pruning(model.text_encoder.model, heads, ffn, scores)
            apply_plan(model.text_encoder.model, plan)
            metrics = evaluate(model, merged.resources, prepared)
            with torch.no_grad():
                vectors = model.text_encoder(batch["input_ids"], batch["attention_mask"])
            cosine = torch.nn.functional.cosine_similarity(vectors, reference).mean()
            params = sum(p.numel() for p in model.text_encoder.parameters())
            rows.append(
                {
                    "importance": rule,
                    "heads": heads,
                    "ffn": ffn,
                    "val_accuracy": metrics["accuracy"],
                    "val_macro_f1": metrics["macro_f1"],
                    "val_loss": metrics.get("loss"),
                    "text_vector_cosine": round(float(cosine), 4),
                    "encoder_params_m": round(params / 1e6, 2),
                }
            )
    best = rows[0]["val_accuracy"]  # weight-norm (0, 0): the merged encoder
    kept = [
        r
        for r in rows
        if r["importance"] == "weight-norm"  # what `kgfuse export --prune` uses by default
        and r["val_accuracy"] >= best - tolerance
        and r["text_vector_cosine"] >= min_cosine
    ]
    chosen = min(kept, key=lambda r: (r["encoder_params_m"], -r["text_vector_cosine"]))
    print_sweep(rows)
    Console().print(
        f"chosen on validation ({len(prepared)} texts): heads {chosen['heads']}, FFN "
        f"{chosen['ffn']}: the most pruning by weight norms within {tolerance} of the unpruned "
        f"accuracy whose text vectors keep a mean cosine >= {min_cosine}"
    )
    return {
        "texts": len(prepared),
        "min_cosine": min_cosine,
        "rows": rows,
        "chosen": [chosen["heads"], chosen["ffn"]],
    }


def print_sweep(rows: list[dict[str, Any]]) -> None:
    table = Table(
        "importance", "heads", "FFN", "val acc", "macro-F1", "val loss", "cosine", "M params"
    )
    for r in rows:
        table.add_row(
            r["importance"],
            f"{r['heads']:.2f}",
            f"{r['ffn']:.2f}",
            f"{r['val_accuracy']:.3f}",
            f"{r['val_macro_f1']:.3f}",
            f"{r['val_loss']:.4f}",
            f"{r['text_vector_cosine']:.3f}",
            f"{r['encoder_params_m']:.2f}",
        )
    Console().print(table)


def write_examples(examples: list[Example], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([e.text, e.label] for e in examples)
    return path


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
    parser.add_argument("--prune-heads", type=float, default=DEFAULT_HEADS)
    parser.add_argument("--prune-ffn", type=float, default=DEFAULT_FFN)
    parser.add_argument("--sweep", action="store_true", help="choose the amounts on validation")
    parser.add_argument(
        "--min-cosine",
        type=float,
        default=0.8,
        help="--sweep: least mean cosine of pruned to unpruned text vectors on validation",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    chosen: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folders = {"trained": args.bundle, "merged": export_bundle(args.bundle, Path(tmp) / "m")}
        prune = (args.prune_heads, args.prune_ffn)
        if args.sweep:
            merged = Predictor.from_dir(folders["merged"])
            val = write_examples(validation_examples(merged), Path(tmp) / "val.csv")
            chosen = sweep(merged, val, args.tolerance, args.min_cosine)
            prune = (chosen["chosen"][0], chosen["chosen"][1])
            del merged
        for name, flags in kinds(prune).items():
            if flags:
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
    merged_row = next(r for r in rows if r["bundle"] == "merged")
    for row in rows:
        row["p50_vs_trained"] = row["p50_ms"] / base["p50_ms"]
        row["p50_vs_merged"] = row["p50_ms"] / merged_row["p50_ms"]
        row["size_vs_merged"] = row["size_mb"] / merged_row["size_mb"]
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
        "prune": {"heads": prune[0], "ffn": prune[1]},
        "validation_sweep": chosen,
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
        "MB / merged",
        "p50 / merged",
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
            f"{r['size_vs_merged']:.2f}",
            f"{r['p50_vs_merged']:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(f"fastest at equal accuracy (one text, p50): {fastest}")


if __name__ == "__main__":
    main()
