""".venv/bin/python bench/bundle_verify.py --json bench/results/bundle_verify.json

What checking a bundle's SHA-256 manifest costs at load, on the largest bundle kgfuse writes: a
merged export (``kgfuse export``) whose ``encoder/`` holds the whole bundled MiniLM-L6 (~90 MB).

1. Trains configs/tiny.yaml with the bundled encoder (one epoch: the figures are about bytes,
   not accuracy) and exports it merged.
2. Times `verify_bundle` alone (what ``kgfuse bundle verify`` and every load add) and a whole
   `load_bundle` (which includes the check), each the fastest of ``--repeat`` passes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from relpaths import write_report  # noqa: E402
from timing import fastest  # noqa: E402


def run(repeat: int) -> dict[str, Any]:
    from fusion.bundle import load_bundle, read_meta, verify_bundle
    from fusion.export import export_bundle
    from fusion.train import main as train

    with tempfile.TemporaryDirectory(prefix="kgfuse-bench-") as tmp:
        overrides = [f"output={tmp}/run", "train.epochs=1", "train.threads=1"]
        trained = Path(train(REPO / "configs" / "tiny.yaml", overrides, progress=False).bundle)
        bundle = export_bundle(trained, Path(tmp) / "merged")
        meta = read_meta(bundle)
        size = sum((bundle / name).stat().st_size for name in meta["files"])
        verify_s = fastest(lambda: verify_bundle(bundle, meta), repeat)
        load_s = fastest(lambda: load_bundle(bundle), repeat)
    return {
        "bundle": "configs/tiny.yaml with the bundled MiniLM-L6, exported merged",
        "files": len(meta["files"]),
        "megabytes": round(size / 1e6, 1),
        "verify_s": round(verify_s, 3),
        "load_s": round(load_s, 3),
        "verify_share_of_load": round(verify_s / load_s, 3),
        "megabytes_per_s": round(size / 1e6 / verify_s),
        "repeat": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes; the fastest is kept")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = run(args.repeat)
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.json:
        write_report(args.json, result)


if __name__ == "__main__":
    main()
