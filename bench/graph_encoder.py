"""Does the graph encoder earn its place? The paths encoder against the RGCN, against no graph
encoder, against the reference; and the training options, each on and off.

    .venv/bin/python bench/graph_encoder.py --json bench/results/graph_encoder.json --readme

For each shared data set (the data sets and splits of bench/generalization.py: pokedex species,
symptom2disease held-out symptoms, demo), one ``kgfuse compare configs/NAME.yaml --seeds S``
with the config's settings and the paths encoder (``model.graph_encoder=paths``), and the rows:
reference (text and label-path counts), the counts-only reference (the bar of a model that
reads no text), text, fused with paths and fused with the RGCN, and graph-only with each encoder,
over S seeds; fused-no-gnn (text plus the label counts) and fused with each training option
toggled (mention masking, mention swap, FGM) on the first seed; the explanation faithfulness
of the first fused run (top 3 paths and the top path alone).
Every choice in those configs was made on validation; test figures are read only here, to
report. Two data sets run at a time, one torch thread each, so the s/epoch figures compare rows
of one data set, not data sets.

``--readme`` rewrites README.md's block between the graph-encoder markers; ``--render JSON``
does only that, from a saved run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from generalization import (
    CLI,
    DATASETS,
    REPO,
    bench_parser,
    cell_md,
    data_overrides,
    finish,
    measured_markdown,
    measured_on,
    replace_block,
    row_record,
    rows_markdown,
    run_pipelines,
    targets_markdown,
)

README = REPO / "README.md"
BEGIN, END = "<!-- graph-encoder:begin -->", "<!-- graph-encoder:end -->"
COMPARE_ROWS = (
    "reference,reference-counts,text,fused,fused-encoder,graph,graph-encoder,fused-no-gnn,"
    "fused-counts,fused-mentions,fused-swap,fused-fgm"
)
OPTION_PREFIXES = ("fused-no-", "fused-counts", "fused-mention-mask-", "fused-swap-", "fused-fgm-")


def command(name: str, out: Path, seeds: int, quick: bool) -> list[str]:
    config, _, _ = DATASETS[name]
    extra = ["train.epochs=1"] if quick else []
    return [
        *CLI,
        "compare",
        config,
        f"output={out / name}",
        "train.threads=1",
        "model.graph_encoder=paths",
        *data_overrides(name, out.parent),
        *extra,
        "--seeds",
        str(seeds),
        "--rows",
        COMPARE_ROWS,
        "--faithfulness-texts",
        "100",
        "--json",
        str(out / f"{name}.json"),
    ]


def encoders(report: dict[str, Any]) -> dict[str, str]:
    """Row name -> the row's name in the tables, with its graph encoder spelled out."""
    mine = report.get("graph_encoder", "rgcn")
    other = "rgcn" if mine == "paths" else "paths"
    return {
        "fused": f"fused, {mine}",
        f"fused-{other}": f"fused, {other}",
        "graph": f"graph, {mine}",
        f"graph-{other}": f"graph, {other}",
    }


def rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per row: the reference, text, each encoder's, then the options'."""
    s, names = report["summary"], encoders(report)
    order = ["reference", "reference-counts", "text", *names, "fused-no-gnn"]
    order += [r for r in s if r.startswith(OPTION_PREFIXES) and r not in order]
    return [row_record(name, s, row, names.get(row, row)) for row in order if row in s]


def checks(name: str, report: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """The issue's targets on this data set (test accuracy on unseen entities)."""
    _, unseen, _ = DATASETS[name]
    key = f"test:{unseen}/accuracy"
    summary = report["summary"]

    def acc(row: str) -> float:
        value = summary.get(row, {}).get(key)
        return float(value["mean"]) if value else float("nan")

    mine = report.get("graph_encoder", "rgcn")
    paths, rgcn = ("fused", "fused-rgcn") if mine == "paths" else ("fused-paths", "fused")
    graph_paths = "graph" if mine == "paths" else "graph-paths"
    # a graph-only model reads no text: its bar is the reference on the label-path counts alone
    bar = acc("reference-counts")
    out = [
        (
            f"{name}: graph (paths) - counts-only reference, unseen",
            acc(graph_paths) - bar,
            ">= 0",
            acc(graph_paths) >= bar,
        )
    ]
    gain = acc(paths) - acc("fused-no-gnn")
    if name == "pokedex":
        out.append(
            (
                f"{name}: fused (paths) - fused (rgcn), unseen",
                acc(paths) - acc(rgcn),
                ">= +0.03",
                acc(paths) - acc(rgcn) >= 0.03,
            )
        )
        out.append(
            (f"{name}: fused (paths) - fused-no-gnn, unseen", gain, ">= +0.03", gain >= 0.03)
        )
    else:
        out.append((f"{name}: fused (paths) - fused-no-gnn, unseen", gain, ">= 0", gain >= 0))
    text_epoch = summary.get("text", {}).get("seconds_per_epoch") or float("nan")
    ratio = summary.get(paths, {}).get("seconds_per_epoch", float("nan")) / text_epoch
    out.append((f"{name}: fused (paths) epoch / text epoch", ratio, "<= 1.5", ratio <= 1.5))
    f = report.get("faithfulness")
    if f and mine == "paths":
        top1 = f.get("ratio_top1", float("nan"))
        out.append((f"{name}: top path's comprehensiveness / random", top1, ">= 2", top1 >= 2))
    return out


def markdown(payload: dict[str, Any]) -> str:
    out = measured_markdown(payload, "the references, text, both fused and both graph rows")
    for name, result in payload["results"].items():
        unseen = DATASETS[name][1]
        when = measured_on(payload, result)
        out += [f"**{name}**" + (f" ({when})" if when else ""), ""]
        out += rows_markdown(name, result["rows"], ece=False)
        f = result.get("faithfulness")
        if f:
            out += [
                "",
                f"Explanations of the first fused run ({f['texts']} `{unseen}` texts, "
                f"log-odds): removing the top 3 paths drops {f['comp']:.3f} against "
                f"{f['comp_random']:.3f} for random walks ({f['ratio']:.1f}x); the top path "
                f"alone {f['comp_top1']:.3f} against {f['comp_top1_random']:.3f} "
                f"({f['ratio_top1']:.1f}x).",
            ]
        out.append("")
    return "\n".join(out + targets_markdown(payload["checks"])) + "\n"


def write_readme(payload: dict[str, Any]) -> None:
    replace_block(BEGIN, END, markdown(payload))


def main() -> None:
    parser = bench_parser(__doc__, REPO / "runs" / "bench" / "encoder")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch: a smoke run")
    args = parser.parse_args()
    if args.render:
        write_readme(json.loads(args.render.read_text(encoding="utf-8")))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = 1 if args.quick else args.seeds
    started = time.perf_counter()
    jobs = {name: [command(name, args.out, seeds, args.quick)] for name in args.datasets}
    seconds = run_pipelines(jobs, args.out, ("compare",))
    results: dict[str, Any] = {}
    all_checks: list[tuple[str, float, str, bool]] = []
    for name in seconds:
        report = json.loads((args.out / f"{name}.json").read_text())
        table = rows(name, report)
        all_checks += checks(name, report)
        results[name] = {
            "rows": table,
            "faithfulness": report.get("faithfulness"),
            "seconds": seconds[name],
            "report": report,
        }
        print(f"\n== {name}: {seconds[name]['compare'] / 60:.1f} min")
        for r in table:
            cells = [
                cell_md(r[k], len(r["seeds"])) for k in ("val_unseen", "test_seen", "test_unseen")
            ]
            print(
                f"{r['row']:24} "
                + " ".join(f"{c:>15}" for c in cells)
                + f" {r['seconds_per_epoch']:7.1f}"
            )
    minutes = (time.perf_counter() - started) / 60
    finish(args, results, all_checks, minutes, seeds, write_readme)


if __name__ == "__main__":
    main()
