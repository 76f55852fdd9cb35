""".venv/bin/python bench/predict_large.py --json bench/results/predict_large.json

`kgfuse predict BUNDLE -i FILE -o OUT` over a large file: texts/s, and peak RSS at each size to
show that memory stays bounded (the input streams in, the predictions stream out).

For each ``--sizes`` N (default 10,000 and 100,000), writes N texts to a temporary .txt file
(the demo's texts, cycled, each numbered so no two are alike), runs the real CLI in a
subprocess with ``--no-progress``, and reads its peak RSS from the kernel (``wait4``). Reported:
seconds, texts/s, peak RSS (MB), and the RSS growth from the smallest size to each larger one.
Then it checks resuming: the smallest run is repeated, interrupted (SIGINT) about half-way,
rerun, and its output compared byte for byte with the uninterrupted run's.

Smoke run: ``--sizes 200 1000``. The default bundle is the one ``kgfuse demo`` writes
(runs/demo/fused/bundle). Figures depend on the machine's load: ``uptime`` is recorded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_TEXTS = [REPO / "data" / "demo" / "test_unseen.csv", REPO / "data" / "demo" / "train.csv"]
KGFUSE = [sys.executable, "-c", "from api.cli import main; main()"]


def demo_texts() -> list[str]:
    texts = []
    for path in DEMO_TEXTS:
        with path.open(encoding="utf-8", newline="") as f:
            texts += [row["text"].replace("\n", " ") for row in csv.DictReader(f)]
    return texts


def write_texts(path: Path, n: int) -> None:
    base = demo_texts()
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f"{base[i % len(base)]} (#{i})\n")


def run_predict(bundle: Path, texts: Path, out: Path, stop_at_line: int | None = None) -> dict:
    """One `kgfuse predict` run: seconds, exit code and the child's peak RSS (MB)."""
    cmd = [*KGFUSE, "predict", str(bundle), "-i", str(texts), "-o", str(out), "--no-progress"]
    started = time.perf_counter()
    child = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint
    )
    part, ended = out.with_name(out.name + ".part"), None
    while stop_at_line is not None:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:  # it ended first
            ended = status, usage
            break
        if part.exists() and sum(1 for _ in part.open("rb")) >= stop_at_line:
            os.kill(child.pid, signal.SIGINT)  # Ctrl-C, while lines are being written
            break
        time.sleep(1.0)
    stderr = child.stderr.read().decode() if child.stderr else ""  # until the child closes it
    # os.wait4, not child.wait(): it also gives the child's peak RSS
    status, usage = ended or os.wait4(child.pid, 0)[1:]
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": round(seconds, 2),
        "exit_code": child.returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "stderr_tail": stderr[-300:],
    }


def _default_sigint() -> None:
    """A job started in the background (``cmd &``) ignores SIGINT, and so would its children:
    the interrupted run would then run to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo" / "fused" / "bundle")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-resume", action="store_true", help="Skip the interruption check.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    resume: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        for n in sorted(args.sizes):
            texts, out = Path(tmp) / f"texts-{n}.txt", Path(tmp) / f"pred-{n}.jsonl"
            write_texts(texts, n)
            run = run_predict(args.bundle, texts, out)
            lines = sum(1 for _ in out.open()) if out.exists() else 0
            rows.append({"texts": n, **run, "lines": lines, "texts_per_s": n / run["seconds"]})
            print(
                f"{n:>8,} texts  {run['seconds']:8.1f} s  {n / run['seconds']:7.1f} texts/s  "
                f"peak RSS {run['peak_rss_mb']:7.1f} MB  exit {run['exit_code']}",
                flush=True,
            )
        if not args.no_resume:
            resume = check_resume(args.bundle, Path(tmp), rows[0])
            print(f"resume: {resume}", flush=True)
    for row in rows:
        row["rss_growth_mb"] = round(row["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)
    report = {
        "benchmark": "predict_large",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "bundle": os.path.relpath(args.bundle, REPO),
        "rows": rows,
        "resume": resume,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def check_resume(bundle: Path, tmp: Path, whole: dict[str, Any]) -> dict[str, Any]:
    """Interrupt a run half-way, rerun it, and compare with the uninterrupted one."""
    n = whole["texts"]
    texts, out = tmp / f"texts-{n}.txt", tmp / "resumed.jsonl"
    stopped = run_predict(bundle, texts, out, stop_at_line=n // 2)
    stopped_out_exists = out.exists()  # OUT appears only when every line is written
    part = out.with_name(out.name + ".part")
    kept = sum(1 for _ in part.open()) if part.exists() else 0
    rerun = run_predict(bundle, texts, out)
    same = out.exists() and out.read_bytes() == (tmp / f"pred-{n}.jsonl").read_bytes()
    return {
        "interrupted_exit_code": stopped["exit_code"],
        "output_exists_after_interrupt": stopped_out_exists,
        "lines_before_rerun": kept,
        "rerun_seconds": rerun["seconds"],
        "rerun_exit_code": rerun["exit_code"],
        "identical_to_uninterrupted": same,
    }


if __name__ == "__main__":
    main()
