"""Generalization to unseen entities, chosen on validation and checked on test: the promise, measured.

    .venv/bin/python bench/generalization.py --json bench/results/generalization.json

For each shared data set (one process per data set, one torch thread each, two at a time):
1. ``kgfuse tune CONFIG --trials N``: settings chosen on val:unseen only (the objective never
   names a test file); the wall time is reported;
2. ``kgfuse compare OUTPUT/tune/best.yaml --seeds S --with-default``: the tuned fused model and
   kgfuse's defaults over S seeds, text over S seeds, the reference (frozen embeddings + label
   path counts + logistic regression) over S seeds, and graph, counter, fused on a shuffled KG
   and fused with no KG on the first seed; explanation faithfulness of the first fused run.

Data sets: pokedex (test `unseen`: species no training text mentions), symptom2disease (a
`kgfuse split` of the texts holding out 25% of the linked symptoms, seed 0: test `heldout`, and a
random in-distribution `seen`), and the embedded demo (test `unseen`: product models). The table
lists every row with val:unseen, test seen and unseen accuracy, unseen macro-F1 and ECE, then
checks the targets. Test figures are read only here, to report. ``--readme`` rewrites the
README's results block with the same tables; ``--render JSON`` does only that, from a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from relpaths import relative_paths

from kg.files import rewrite_marked_block, write_json

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLI = [sys.executable, "-c", "from api.cli import main; main()"]
ROWS = (
    "default",
    "fused",
    "text",
    "reference",
    "counter",
    "graph",
    "fused-shuffled",
    "fused-no-kg",
)
ROW_NAMES = {"fused": "tuned"}
# compare's rows this benchmark trains (bench/graph_encoder.py trains the encoder's and options')
COMPARE_ROWS = (
    "reference,text,fused,graph,counter,fused-shuffled,fused-no-kg,fused-mentions,fused-probe"
)
# compare's ablations, by prefix: mention masking, and the linear-probe start of the text head
ABLATION_ROWS = ("fused-no-mention-mask", "fused-mention-mask-", "fused-no-probe", "fused-probe")
README = REPO / "README.md"
BEGIN, END = "<!-- generalization:begin -->", "<!-- generalization:end -->"
# data set -> (config, the test set about unseen entities, the in-distribution one)
DATASETS = {
    "pokedex": ("configs/pokedex.yaml", "unseen", "seen"),
    "symptom2disease": ("configs/symptom2disease.yaml", "heldout", "seen"),
    "demo": ("configs/demo.yaml", "unseen", "seen"),
}
TRIALS = {"pokedex": 3, "symptom2disease": 12, "demo": 16}  # pokedex: ~8 min a trial here


def make_s2d_split(out: Path) -> None:
    if (out / "split.json").is_file():
        return
    folder = SHARED / "symptom2disease"
    subprocess.run(
        [
            *CLI,
            "split",
            str(folder / "Symptom2Disease.csv"),
            "--kg",
            str(folder / "kg.ttl"),
            "--type",
            "http://example.org/symptomkb/Symptom",
            "--fraction",
            "0.25",
            "--seed",
            "0",
            "--seen-fraction",
            "0.15",
            "-o",
            str(out),
        ],
        check=True,
        cwd=REPO,
    )


def data_overrides(name: str, out: Path) -> list[str]:
    if name != "symptom2disease":
        return []
    split = out / "symptom2disease-split"
    make_s2d_split(split)
    return [
        f"data.train={split / 'train.csv'}",
        f"data.val={split / 'val.csv'}",
        f"data.tests={{seen: {split / 'test_seen.csv'}, heldout: {split / 'test.csv'}}}",
    ]


def pipeline(name: str, out: Path, seeds: int, trials: int, quick: bool) -> list[list[str]]:
    """The commands of one data set: tune, then compare the tuned config."""
    config, _, _ = DATASETS[name]
    base = [f"output={out / name}", "train.threads=1", *data_overrides(name, out)]
    if quick:
        base.append("train.epochs=1")
    tuned = out / name / "tune" / "best.yaml"
    return [
        [*CLI, "tune", config, *base, "--trials", str(trials)],
        [
            *CLI,
            "compare",
            str(tuned),
            f"output={out / name}",
            "train.threads=1",
            "--seeds",
            str(seeds),
            "--with-default",
            "--rows",
            COMPARE_ROWS,
            "--json",
            str(out / f"{name}.json"),
        ],
    ]


def run_pipelines(
    jobs: dict[str, list[list[str]]], out: Path, steps: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Each data set's commands in order, two data sets at a time; returns wall seconds.
    ``steps`` names the commands of each list ("tune", "compare")."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen[bytes], int, float]] = {}
    seconds: dict[str, dict[str, float]] = {name: {} for name in jobs}
    failed: set[str] = set()

    def start(name: str, step: int) -> None:
        log = (out / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            jobs[name][step], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        running[name] = (proc, step, time.perf_counter())

    while pending or running:
        while pending and len(running) < 2:
            start(pending.pop(0), 0)
        time.sleep(2)
        for name, (proc, step, began) in list(running.items()):
            if proc.poll() is None:
                continue
            seconds[name][steps[step]] = time.perf_counter() - began
            del running[name]
            if proc.returncode != 0:
                print(
                    f"{name}: step {step + 1} failed; see {out / (name + '.log')}", file=sys.stderr
                )
                failed.add(name)
            elif step + 1 < len(jobs[name]):
                start(name, step + 1)
    return {k: v for k, v in seconds.items() if k not in failed}


def cell(summary: dict[str, Any], row: str, key: str) -> dict[str, float] | None:
    return summary.get(row, {}).get(key)


def row_record(name: str, summary: dict[str, Any], row: str, shown: str) -> dict[str, Any]:
    """Row ``row`` of data set ``name``'s compare summary, shown as ``shown``: mean and spread
    of each column."""
    _, unseen, seen = DATASETS[name]
    entry = summary[row]
    return {
        "row": shown,
        "key": row,
        "seeds": entry["seeds"],
        "val_unseen": entry.get("val:unseen/accuracy"),
        "test_seen": entry.get(f"test:{seen}/accuracy"),
        "test_unseen": entry.get(f"test:{unseen}/accuracy"),
        "macro_f1_unseen": entry.get(f"test:{unseen}/macro_f1"),
        "ece_unseen": entry.get(f"test:{unseen}/ece"),
        "seconds_per_epoch": entry["seconds_per_epoch"],
        "train_seconds": entry["seconds"],
    }


def table(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per row this benchmark trains, in the README's order."""
    s = report["summary"]
    ablations = [r for r in s if r.startswith(ABLATION_ROWS)]
    return [row_record(name, s, r, ROW_NAMES.get(r, r)) for r in (*ROWS, *ablations) if r in s]


def mean(report: dict[str, Any], row: str, key: str) -> float:
    value = cell(report["summary"], row, key)
    return float(value["mean"]) if value else float("nan")


def checks(name: str, report: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    _, unseen, _ = DATASETS[name]
    key = f"test:{unseen}/accuracy"
    fused, text = mean(report, "fused", key), mean(report, "text", key)
    reference, default = mean(report, "reference", key), mean(report, "default", key)
    shuffled = mean(report, "fused-shuffled", key)
    gain = fused - text
    lost = (fused - shuffled) / gain if gain > 0 else float("nan")
    rows = []
    if name == "pokedex":
        rows.append((f"{name}: tuned unseen accuracy", fused, ">= 0.93", fused >= 0.93))
    if name == "symptom2disease":
        rows.append((f"{name}: tuned held-out accuracy", fused, ">= 0.90", fused >= 0.90))
    ece = mean(report, "fused", f"test:{unseen}/ece")
    rows += [
        (
            f"{name}: tuned - reference, unseen",
            fused - reference,
            ">= +0.02",
            fused - reference >= 0.02,
        ),
        (f"{name}: default / tuned, unseen", default / fused, ">= 0.95", default / fused >= 0.95),
        (f"{name}: share of the KG's gain lost on a shuffled KG", lost, ">= 0.80", lost >= 0.80),
        (f"{name}: tuned ECE, unseen", ece, "<= 0.05", ece <= 0.05),
    ]
    f = report.get("faithfulness")
    if f:
        rows.append((f"{name}: comprehensiveness / random", f["ratio"], ">= 2", f["ratio"] >= 2))
    return rows


def fmt(value: dict[str, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value['mean']:.3f}±{value['std']:.3f}"


def cell_md(value: dict[str, float] | None, seeds: int) -> str:
    if value is None:
        return "-"
    return f"{value['mean']:.3f} ± {value['std']:.3f}" if seeds > 1 else f"{value['mean']:.3f}"


def rows_markdown(name: str, rows: list[dict[str, Any]], ece: bool) -> list[str]:
    """Data set ``name``'s rows as a markdown table: seeds, accuracies (mean ± std), unseen
    macro-F1 (and ECE), seconds per epoch and their ratio to the text row's."""
    _, unseen, seen = DATASETS[name]
    text_seconds = next((r["seconds_per_epoch"] for r in rows if r["key"] == "text"), 0.0)
    measures = ["val_unseen", "test_seen", "test_unseen", "macro_f1_unseen"]
    heads = ["row", "seeds", "val:unseen", f"test {seen}", f"test {unseen}", f"{unseen} macro-F1"]
    if ece:
        measures.append("ece_unseen")
        heads.append(f"{unseen} ECE")
    heads += ["s/epoch", "x text"]
    out = ["| " + " | ".join(heads) + " |", "| --- " * len(heads) + "|"]
    for r in rows:
        n, epoch = len(r["seeds"]), r["seconds_per_epoch"]
        ratio = f"{epoch / text_seconds:.2f}" if text_seconds and epoch else "-"
        cells = [r["row"], str(n), *(cell_md(r[m], n) for m in measures)]
        cells += [f"{epoch:.0f}" if epoch else "-", ratio]
        out.append("| " + " | ".join(cells) + " |")
    return out


def measured_markdown(payload: dict[str, Any], seeded: str) -> list[str]:
    """A README block's first line: when, on how many cores, which rows had several seeds."""
    return [
        f"Measured {payload.get('created', '')[:10]} on {payload.get('cores', 2)} cores; "
        f"{payload['seeds']} seeds for {seeded} (mean ± std), the first seed for the others; "
        f"the last run took {payload['minutes']:.0f} min"
        + (
            " (a data set with its own date is from an earlier run)."
            if any(measured_on(payload, r) for r in payload["results"].values())
            else "."
        ),
        "",
    ]


def markdown(payload: dict[str, Any]) -> str:
    """The README's results: one table per data set, explanations, then the targets."""
    out = measured_markdown(payload, "the seeded rows")
    for name, result in payload["results"].items():
        unseen = DATASETS[name][1]
        sec = result["seconds"]
        trials = result.get("trials", TRIALS[name])
        out += [
            f"**{name}** (tune: {trials} trials, {sec.get('tune', 0) / 60:.0f} min; compare: "
            f"{sec.get('compare', 0) / 60:.0f} min"
            + (f"; {when}" if (when := measured_on(payload, result)) else "")
            + ")",
            "",
        ]
        out += rows_markdown(name, table(name, result["report"]), ece=True)
        f = result.get("faithfulness")
        if f:
            out.append("")
            out.append(
                f"Explanations ({f['texts']} `{unseen}` texts, top {f['top_k']} paths, log-odds "
                f"margin of the predicted class): comprehensiveness {f['comp']:.3f} against "
                f"{f['comp_random']:.3f} for random paths of the same length "
                f"({f['ratio']:.1f}x); sufficiency {f['suff']:.3f} against "
                f"{f['suff_random']:.3f}."
            )
        out.append("")
    return "\n".join(out + targets_markdown(payload["checks"])) + "\n"


def targets_markdown(checks: list[dict[str, Any]]) -> list[str]:
    """The targets table of a README block: measured, goal, met or missed."""
    out = ["| target | measured | goal | |", "| --- | --- | --- | --- |"]
    for c in checks:
        verdict = "met" if c["ok"] else "**missed**"
        out.append(f"| {c['name']} | {c['value']:.3f} | {c['goal']} | {verdict} |")
    return out


def finish(
    args: argparse.Namespace,
    results: dict[str, Any],
    checks: list[tuple[str, float, str, bool]],
    minutes: float,
    seeds: int,
    write: Any,
) -> None:
    """Print the targets, then write the JSON (``--json``, paths relative to the repository)
    and the README block (``--readme``, by ``write(payload)``)."""
    print(f"\n{'target':60} {'value':>8} {'goal':>9}")
    for name, value, goal, ok in checks:
        print(f"{name:60} {value:8.3f} {goal:>9}  {'met' if ok else 'MISSED'}")
    print(f"\nwhole benchmark: {minutes:.1f} min")
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    payload = relative_paths(
        {
            "results": {name: {**r, "created": created} for name, r in results.items()},
            "checks": [{"name": n, "value": v, "goal": g, "ok": ok} for n, v, g, ok in checks],
            "minutes": minutes,
            "seeds": seeds,
            "quick": args.quick,
            "created": created,
            "cores": os.cpu_count(),
        }
    )
    if args.json and args.json.is_file():
        payload = carry_over(json.loads(args.json.read_text(encoding="utf-8")), payload)
    if args.readme:
        write(payload)
    if args.json:
        write_json(args.json, payload)


def carry_over(earlier: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus the data sets of ``earlier`` (the JSON file's last run) that it did not
    measure (``--datasets`` named fewer), in `DATASETS` order, with their targets; each data
    set keeps the date it was measured (``created``), which the README block shows."""
    done = payload["results"]
    kept = {
        name: {**result, "created": result.get("created", earlier.get("created", ""))}
        for name, result in earlier.get("results", {}).items()
        if name not in done and name in DATASETS
    }
    if not kept:
        return payload
    results = {n: (done.get(n) or kept[n]) for n in DATASETS if n in done or n in kept}
    checks = [c for c in earlier.get("checks", []) if c["name"].split(":")[0] in kept]
    every = payload["checks"] + checks
    order = list(results)
    every.sort(key=lambda c: order.index(c["name"].split(":")[0]))
    return {**payload, "results": results, "checks": every}


def measured_on(payload: dict[str, Any], result: dict[str, Any]) -> str:
    """``"measured 2026-12-06 21:40"`` for a data set carried over from an earlier run (its
    own ``created``, not the payload's), else ``""``."""
    created = result.get("created", "")
    if not created or created == payload.get("created", ""):
        return ""
    return f"measured {created[:10]} {created[11:16]}"


def write_readme(payload: dict[str, Any]) -> None:
    """Replace the README's block between the generalization markers with ``payload``'s tables."""
    replace_block(BEGIN, END, markdown(payload))


def replace_block(begin: str, end: str, body: str) -> None:
    """Replace what README.md holds between the markers ``begin`` and ``end`` with ``body``."""
    rewrite_marked_block(README, begin, end, body)


def bench_parser(doc: str | None, out: Path) -> argparse.ArgumentParser:
    """The options of both generalization benchmarks (this one and bench/graph_encoder.py),
    with ``out`` as --out's default; each adds its own."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write every figure as JSON to this file")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the seeded rows")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument(
        "--readme", action="store_true", help="also rewrite README.md's results block"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: rewrite README.md's results block from this benchmark JSON",
    )
    return parser


def main() -> None:
    parser = bench_parser(__doc__, REPO / "runs" / "bench")
    parser.add_argument("--trials", type=int, help="tuning trials per data set (default: per set)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 2 trials, 1 epoch: a smoke run, not a measurement",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        default=["tune", "compare"],
        choices=["tune", "compare"],
        help="run only some steps (compare alone reuses OUT/NAME/tune/best.yaml and reads the "
        "tuning time back from OUT/tune-seconds.json)",
    )
    args = parser.parse_args()
    if args.render:
        payload = json.loads(args.render.read_text(encoding="utf-8"))
        made = time.localtime(args.render.stat().st_mtime)
        payload.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z", made))
        write_readme(payload)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = 1 if args.quick else args.seeds
    started = time.perf_counter()
    order = ("tune", "compare")
    steps = tuple(s for s in order if s in args.steps)
    jobs, trials_of = {}, {}
    for name in args.datasets:
        trials = trials_of[name] = 2 if args.quick else args.trials or TRIALS[name]
        commands = pipeline(name, args.out, seeds, trials, args.quick)
        jobs[name] = [cmd for step, cmd in zip(order, commands, strict=True) if step in steps]
    seconds = run_pipelines(jobs, args.out, steps)
    earlier = args.out / "tune-seconds.json"
    if "compare" not in steps:
        times = ", ".join(f"{k} {v.get('tune', 0) / 60:.1f} min" for k, v in seconds.items())
        print(f"tuning done: {times}")
        known = json.loads(earlier.read_text()) if earlier.is_file() else {}
        earlier.write_text(json.dumps(known | seconds) + "\n")
        return
    if "tune" not in steps and earlier.is_file():
        for name, value in json.loads(earlier.read_text()).items():
            if name in seconds:
                seconds[name].setdefault("tune", value.get("tune", 0.0))
    results: dict[str, Any] = {}
    all_checks: list[tuple[str, float, str, bool]] = []
    for name in seconds:
        report = json.loads((args.out / f"{name}.json").read_text())
        rows = table(name, report)
        found = checks(name, report)
        all_checks += found
        results[name] = {
            "rows": rows,
            "faithfulness": report.get("faithfulness"),
            "seconds": seconds[name],
            "trials": trials_of[name],
            "report": report,
        }
        print(
            f"\n== {name}: tune {seconds[name].get('tune', 0) / 60:.1f} min, "
            f"compare {seconds[name].get('compare', 0) / 60:.1f} min"
        )
        print(
            f"{'row':15} {'val:unseen':>13} {'test seen':>13} {'test unseen':>13} "
            f"{'unseen F1':>13} {'unseen ECE':>13} {'s/epoch':>8}"
        )
        for r in rows:
            print(
                f"{r['row']:15} {fmt(r['val_unseen']):>13} {fmt(r['test_seen']):>13} "
                f"{fmt(r['test_unseen']):>13} {fmt(r['macro_f1_unseen']):>13} "
                f"{fmt(r['ece_unseen']):>13} {r['seconds_per_epoch']:8.1f}"
            )
        f = report.get("faithfulness")
        if f:
            print(
                f"explanations ({f['texts']} texts, top {f['top_k']} paths, log-odds): "
                f"comprehensiveness {f['comp']:.3f} vs random {f['comp_random']:.3f}; "
                f"sufficiency {f['suff']:.3f} vs random {f['suff_random']:.3f}"
            )
    minutes = (time.perf_counter() - started) / 60
    finish(args, results, all_checks, minutes, seeds, write_readme)


if __name__ == "__main__":
    main()
