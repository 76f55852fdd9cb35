"""``kgfuse compare CONFIG``: the ablations and controls that show where a gain comes from.

Trains, on the same data, linking and node features (seed N of a variant draws its validation
split with seed N, as ``kgfuse train CONFIG train.seed=N`` does; the controls run the first seed):
- ``text``: the LoRA-tuned encoder alone (what a user would build instead), over several seeds;
- ``fused``: text + graph, over the same seeds;
- ``graph``: the graph encoder alone;
- ``counter``: the text vector plus parameter-free counts of known entities reaching each label
  node through one shared neighbour ("GNN is a Counter?", ICLR 2022): the bar the GNN must clear;
- ``fused-shuffled``: fused on a degree-preserving rewiring of the KG (a gain that survives it
  does not come from the KG's facts);
- ``fused-no-kg``: fused with nothing linked and no edges.
Prints one table (mean ± std over seeds), writes JSON, and measures explanation fidelity.
Finished runs are reused when compare runs again with the same settings and data.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from fusion.config import ConfigError, RunConfig
from fusion.train import (
    StaleRunError,
    TrainResult,
    build_resources,
    load_data,
    run,
    with_overrides,
)
from kg.graph import KnowledgeGraph
from kg.rewire import rewire

console = Console()


@dataclass(frozen=True)
class Variant:
    name: str
    mode: str
    seeded: bool  # repeated over every seed (else the first seed only)
    graph: str = "kg"  # "kg", "shuffled" or "none"


VARIANTS = (
    Variant("text", "text", True),
    Variant("fused", "fused", True),
    Variant("graph", "graph", False),
    Variant("counter", "counter", False),
    Variant("fused-shuffled", "fused", False, "shuffled"),
    Variant("fused-no-kg", "fused", False, "none"),
)


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == name]
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in mine],
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in mine])),
        }
        for split in mine[0]["metrics"]:
            for metric in ("accuracy", "macro_f1"):
                values = [r["metrics"][split][metric] for r in mine]
                entry[f"{split}/{metric}"] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                }
        out[name] = entry
    return out


def train_or_reuse(config: RunConfig, progress: bool = True, **kwargs: Any) -> TrainResult:
    """`run`, reusing a finished run of the same settings and data in ``config.output`` (only
    evaluation runs again); a run of other settings or data there is deleted and trained afresh."""
    try:
        return run(config, progress=progress, **kwargs)
    except StaleRunError:
        shutil.rmtree(config.output)
        return run(config, progress=progress, **kwargs)


def compare(
    config: RunConfig,
    seeds: int = 3,
    variants: tuple[Variant, ...] = VARIANTS,
    fidelity_texts: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    from fusion.bundle import load_bundle
    from fusion.explain import fidelity

    base = Path(config.output) / "compare"
    splits = load_data(config)
    resources = build_resources(config, splits.labels, base)
    compiled = resources.graph if isinstance(resources.graph, KnowledgeGraph) else None
    if compiled is None and any(v.graph == "shuffled" for v in variants):
        raise ConfigError(
            "the shuffled-KG control rewires the whole graph, which needs it compiled in memory; "
            "compare with kg.files (a triple store is read, never rewired)"
        )
    shuffled = None
    # seed N trains on the split `kgfuse train ... train.seed=N` makes (the validation split is
    # drawn with the run's seed), so each row can be reproduced by one `kgfuse train`
    seed_splits = {config.train.seed: splits}
    runs: list[dict[str, Any]] = []
    first_fused: TrainResult | None = None
    for variant in variants:
        for seed in range(config.train.seed, config.train.seed + (seeds if variant.seeded else 1)):
            settings = {
                "mode": variant.mode,
                "counts": config.model.counts and variant.mode == "fused",
            }
            cfg = with_overrides(config, model=settings, train={"seed": seed})
            cfg = replace(cfg, output=str(base / f"{variant.name}-s{seed}"))
            res = resources
            if variant.graph == "shuffled":
                assert compiled is not None  # checked above
                shuffled = shuffled or resources.with_graph(
                    rewire(compiled, seed=config.train.seed)
                )
                res = shuffled
            console.print(f"[bold]{variant.name}[/] seed {seed} ...")
            use_kg = variant.graph != "none"
            if seed not in seed_splits:
                seed_splits[seed] = load_data(cfg)
            result = train_or_reuse(
                cfg, progress, resources=res, splits=seed_splits[seed], use_kg=use_kg
            )
            if variant.name == "fused" and first_fused is None:
                first_fused = result
            runs.append({
                "variant": variant.name, "seed": seed, "bundle": str(result.bundle),
                "metrics": {k: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"]} for k, v in result.metrics.items()},
                "seconds_per_epoch": result.seconds_per_epoch, "epochs": result.epochs_run,
            })  # fmt: skip
    report: dict[str, Any] = {"runs": runs, "summary": _summary(runs)}
    if first_fused is not None and fidelity_texts > 0 and splits.tests:
        model, res, _ = load_bundle(first_fused.bundle)
        name, examples = next(reversed(splits.tests.items()))  # the last test set (e.g. unseen)
        index = {label: i for i, label in enumerate(res.labels)}
        prepared = res.prepare([e.text for e in examples], [index[e.label] for e in examples])
        report["fidelity"] = {
            "test": name,
            **fidelity(model, res, prepared, limit=fidelity_texts, seed=config.train.seed),
        }
    return report


def _cell(entry: dict[str, Any], key: str) -> str:
    m = entry[key]
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if len(entry["seeds"]) > 1 else f"{m['mean']:.3f}"


def print_report(report: dict[str, Any]) -> None:
    summary = report["summary"]
    splits = [k.rsplit("/", 1)[0] for k in next(iter(summary.values())) if k.endswith("/accuracy")]
    table = Table(
        "model", *(f"{s} acc" for s in splits), *(f"{s} F1" for s in splits), "s/epoch", "x text"
    )
    text_time = summary.get("text", {}).get("seconds_per_epoch") or float("nan")
    for name, entry in summary.items():
        table.add_row(
            name, *(_cell(entry, f"{s}/accuracy") for s in splits), *(_cell(entry, f"{s}/macro_f1") for s in splits),
            f"{entry['seconds_per_epoch']:.1f}", f"{entry['seconds_per_epoch'] / text_time:.2f}",
        )  # fmt: skip
    console.print(table)
    if "fidelity" in report:
        f = report["fidelity"]
        console.print(
            f"explanation fidelity on {f['test']} ({f['texts']} texts): removing the top path drops the "
            f"predicted class by {f['top_path_drop']:.3f}, a random path of equal length by "
            f"{f['random_path_drop']:.3f} ({f['ratio']:.1f}x)"
        )


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
