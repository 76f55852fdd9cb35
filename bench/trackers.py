""".venv/bin/python bench/trackers.py --json bench/results/trackers.json

What ``train.tracker`` costs a training run, for each tracker (fusion/trackers.py), on
configs/tiny.yaml with the bundled MiniLM-L6 encoder and ``--epochs`` epochs.

Each tracker trains in its own process, so its package's import is counted as a first run pays
it. The tracker's calls are timed where training makes them: opening (the import), ``start``
(for MLflow: creating the SQLite store), ``log_metrics`` once per epoch and once for the final
metrics, ``log_artifact`` (the bundle) and ``finish``. ``per_epoch_ms`` is the mean epoch
``log_metrics`` call: what the tracker adds to each epoch. The run's own seconds per epoch
(training steps, `TrainResult.seconds_per_epoch`) are shown beside them for scale, with
``train.tracker=none`` as the baseline of the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from fusion.trackers import TRACKERS  # noqa: E402  (imports no backend)


class Timed:
    """A tracker whose every call is timed (seconds per call, by method name): whatever
    methods `fusion.trackers.Tracker` has, each is the tracker's own, timed."""

    def __init__(self, tracker: Any, seconds: dict[str, list[float]]):
        self.tracker, self.seconds = tracker, seconds

    def __getattr__(self, method: str) -> Callable[..., None]:
        call = getattr(self.tracker, method)

        def timed(*args: Any) -> None:
            started = time.perf_counter()
            call(*args)
            self.seconds[method].append(time.perf_counter() - started)

        return timed


def one(tracker: str, epochs: int) -> dict[str, Any]:
    """Train with ``tracker`` in this process; its calls' seconds."""
    import fusion.train
    from fusion.trackers import open_tracker

    seconds: dict[str, list[float]] = defaultdict(list)

    def opened(settings: Any, run_dir: Path) -> Timed:
        started = time.perf_counter()
        inner = open_tracker(settings, run_dir)
        seconds["open"].append(time.perf_counter() - started)
        return Timed(inner, seconds)

    fusion.train.open_tracker = opened
    with tempfile.TemporaryDirectory(prefix="kgfuse-bench-") as tmp:
        overrides = [
            f"output={tmp}/run",
            f"train.epochs={epochs}",
            f"train.patience={epochs}",
            "train.threads=1",
            f"train.tracker={tracker}",
        ]
        started = time.perf_counter()
        result = fusion.train.main(REPO / "configs" / "tiny.yaml", overrides, progress=False)
        wall = time.perf_counter() - started
        bundle_mb = sum(p.stat().st_size for p in result.bundle.rglob("*") if p.is_file()) / 1e6
    epoch_logs = seconds["log_metrics"][:-1]  # the last call carries the final metrics
    return {
        "tracker": tracker,
        "epochs": result.epochs_run,
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "open_s": round(sum(seconds["open"]), 3),
        "start_s": round(sum(seconds["start"]), 3),
        "per_epoch_ms": round(1000 * sum(epoch_logs) / max(len(epoch_logs), 1), 2),
        "artifact_s": round(sum(seconds["log_artifact"]), 3),
        "finish_s": round(sum(seconds["finish"]), 3),
        "tracker_total_s": round(sum(sum(v) for v in seconds.values()), 3),
        "run_s": round(wall, 2),
        "bundle_mb": round(bundle_mb, 1),
    }


def run(epochs: int) -> dict[str, Any]:
    rows = []
    for tracker in TRACKERS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", tracker, "--epochs", str(epochs)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if out.returncode != 0:
            raise SystemExit(f"train.tracker={tracker} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "config": "configs/tiny.yaml, bundled MiniLM-L6, one thread",
        "epochs": epochs,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--one", choices=TRACKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.epochs)))
        return
    result = run(args.epochs)
    columns = [k for k in result["rows"][0] if k != "tracker"]
    print(f"{'tracker':>12} " + " ".join(f"{c:>17}" for c in columns))
    for row in result["rows"]:
        print(f"{row['tracker']:>12} " + " ".join(f"{row[c]!s:>17}" for c in columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
