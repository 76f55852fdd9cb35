""".venv/bin/python bench/bundle_crypto.py [--bundle runs/demo/fused/bundle] [--json FILE]

What encrypting a bundle costs (fusion/bundle_crypto.py), on the demo's fused bundle (``make
demo`` writes it) and on its merged export (``kgfuse export``: the whole encoder, ~90 MB, the
size of a bundle that is served):

1. ``kgfuse bundle encrypt`` and ``kgfuse bundle decrypt`` (`encrypt_bundle`, `decrypt_bundle`,
   the manifest checks included) in MB/s of bundle, against a plain copy of the folder
   (`shutil.copytree`) as the baseline, and the peak of Python's allocations while each runs
   (tracemalloc): the chunked format keeps it at a few MiB whatever the bundle's size.
2. Serve start-up: `api.serve.load_engine`, what ``kgfuse serve`` does before uvicorn listens
   (load the bundle, check its manifest, build the model and linker), on the plain folder and
   on the ``.kgfe`` file (decrypt into /dev/shm, load, remove), and their ratio.

Each figure is the fastest of ``--repeat`` passes, plain and encrypted alternating.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from relpaths import write_report  # noqa: E402
from timing import fastest  # noqa: E402


def _peak_mib(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _size(bundle: Path) -> int:
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    return sum((bundle / name).stat().st_size for name in [*meta["files"], "bundle.json"])


def measure(bundle: Path, work: Path, repeat: int) -> dict[str, Any]:
    """The figures of one bundle; scratch files go under ``work``."""
    from api.metrics import Metrics
    from api.serve import load_engine
    from api.settings import ServeSettings
    from fusion.bundle_crypto import decrypt_bundle, encrypt_bundle, generate_key

    key = base64.b64decode(generate_key())
    key_file = work / "bundle.key"
    key_file.write_text(base64.b64encode(key).decode())
    sealed, opened, copied = work / "bundle.kgfe", work / "opened", work / "copied"
    mb = _size(bundle) / 1e6

    def copy() -> None:
        shutil.rmtree(copied, ignore_errors=True)
        shutil.copytree(bundle, copied)

    copy_s = fastest(copy, repeat)
    encrypt_s = fastest(lambda: encrypt_bundle(bundle, sealed, key, force=True), repeat)
    decrypt_s = fastest(lambda: decrypt_bundle(sealed, opened, key, force=True), repeat)
    encrypt_mib = _peak_mib(lambda: encrypt_bundle(bundle, sealed, key, force=True))
    decrypt_mib = _peak_mib(lambda: decrypt_bundle(sealed, opened, key, force=True))

    def start(path: Path, key_path: Path | None) -> Callable[[], object]:
        settings = ServeSettings(
            bundle=path, bundle_key_file=key_path, hot_triples_dir=work / "hot", threads=1
        )
        return lambda: load_engine(settings, Metrics())

    start(bundle, None)()  # imports and first-touch caches, outside the timings
    plain_s, encrypted_s = [], []
    for _ in range(repeat):
        plain_s.append(fastest(start(bundle, None), 1))
        encrypted_s.append(fastest(start(sealed, key_file), 1))
    return {
        "bundle": str(bundle),
        "megabytes": round(mb, 1),
        "encrypted_megabytes": round(sealed.stat().st_size / 1e6, 1),
        "copy_mb_per_s": round(mb / copy_s),
        "encrypt_mb_per_s": round(mb / encrypt_s),
        "decrypt_mb_per_s": round(mb / decrypt_s),
        "encrypt_peak_mib": round(encrypt_mib, 1),
        "decrypt_peak_mib": round(decrypt_mib, 1),
        "encrypt_vs_copy": round(copy_s / encrypt_s, 2),
        "decrypt_vs_copy": round(copy_s / decrypt_s, 2),
        "startup_plain_s": round(min(plain_s), 3),
        "startup_encrypted_s": round(min(encrypted_s), 3),
        "startup_ratio": round(min(encrypted_s) / min(plain_s), 2),
    }


def run(bundle: Path, merged: bool, repeat: int) -> dict[str, Any]:
    from fusion.bundle import read_meta

    read_meta(bundle)  # a missing or outdated bundle: one clear line, before anything is timed
    results: dict[str, Any] = {"repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="kgfuse-bench-") as tmp:
        work = Path(tmp)
        (work / "demo").mkdir()
        results["demo"] = measure(bundle, work / "demo", repeat)
        if merged:
            from fusion.export import export_bundle

            export = export_bundle(bundle, work / "merged-bundle")
            (work / "merged").mkdir()
            results["merged"] = measure(export, work / "merged", repeat)
            results["merged"]["bundle"] = f"{bundle} exported merged (kgfuse export)"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo" / "fused" / "bundle")
    parser.add_argument("--no-merged", action="store_true", help="skip the merged export")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the fastest is kept")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = run(args.bundle, not args.no_merged, args.repeat)
    for name in ("demo", "merged"):
        for key, value in result.get(name, {}).items():
            print(f"{name:>6} {key:>22}: {value}")
    if args.json:
        write_report(args.json, result)


if __name__ == "__main__":
    main()
