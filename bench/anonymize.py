"""Anonymization: precision and recall on hand-written texts, KG entities kept, and what
redacting the training data costs the demo.

    PYTHONPATH=$PWD .venv/bin/python bench/anonymize.py --json bench/results/anonymize.json

1. Precision and recall per type and overall, span-level, on tests/fixtures/pii_texts.jsonl (76
   texts, written with the finder: a development set) and tests/fixtures/pii_texts_heldout.jsonl
   (30 texts, written after it and never tuned on), both as ``overlap`` (a found span is right
   when it overlaps a gold span of its type) and ``exact`` (same type and characters).
2. KG entities kept: each data set's texts are anonymized with its config's linker protecting
   the KG mentions (as `kgfuse anonymize --config` does), then linked again; reported: texts,
   texts with personal data found, redactions by type, and texts whose linked entities (as a
   multiset of IRIs) are the same before and after; and the same without protection.
3. The demo's accuracy when its training texts are anonymized: configs/demo.yaml trained three
   times with the same seed, on data/demo/train.csv as it is, anonymized with the demo config's
   linker protecting KG mentions, and anonymized without protection; the test texts as they
   are. ``--epochs`` (default: the demo config's own) keeps it short.
4. What ``kgfuse serve --anonymize`` adds to a request: with the demo's fused bundle
   (``--bundle``), each test text predicted alone as the service does without the option, and
   with it (link to find the KG mentions, redact, then predict the redacted text), the two in
   turn text by text; p50 and p95 ms and their ratio. One torch thread.

With ``--json`` naming an existing file, a part left out (``--skip-training``) keeps its figures
from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

from timing import percentile  # bench/timing.py (the script's own folder is on sys.path)

from fusion.anonymize_data import (
    anonymize_texts,
    config_linker,
    linked,
    same_entities,
    write_rows,
)
from kg import files
from nlp.anonymize import Anonymizer, mention_spans
from nlp.pii_eval import read_gold, score
from nlp.texts import read_records

REPO = Path(__file__).resolve().parents[1]
FIXTURES = {
    "development": REPO / "tests/fixtures/pii_texts.jsonl",
    "heldout": REPO / "tests/fixtures/pii_texts_heldout.jsonl",
}
SHARED = REPO.parent / "shared" / "data"
# data set -> (config whose linker protects, files whose texts are anonymized)
DATA_SETS = {
    "demo": (
        "configs/demo.yaml",
        ["data/demo/train.csv", "data/demo/test_seen.csv", "data/demo/test_unseen.csv"],
    ),
    "pokedex": (
        "configs/pokedex.yaml",
        [str(SHARED / "pokedex" / f) for f in ("train.csv", "test_seen.csv", "test_unseen.csv")],
    ),
    "symptom2disease": (
        "configs/symptom2disease.yaml",
        [str(SHARED / "symptom2disease/Symptom2Disease.csv")],
    ),
}


def quality(anonymizer: Anonymizer) -> dict[str, Any]:
    out = {}
    for name, path in FIXTURES.items():
        rows = read_gold(path)
        found = [r.spans for r in anonymizer.redact([t for t, _ in rows])]
        gold = [g for _, g in rows]
        out[name] = {
            "texts": len(rows),
            "overlap": score(gold, found),
            "exact": score(gold, found, exact=True),
        }
    return out


def kept_entities(anonymizer: Anonymizer) -> dict[str, Any]:
    out = {}
    for name, (config, paths) in DATA_SETS.items():
        texts = [r["text"] for p in paths for r in read_records(REPO / p)]
        linker = config_linker(REPO / config)
        started = time.perf_counter()
        _, summary = anonymize_texts(texts, anonymizer, linker)
        seconds = time.perf_counter() - started
        unprotected, plain = anonymize_texts(texts, anonymizer)
        before, after = linked(linker, texts), linked(linker, unprotected)
        out[name] = {
            "texts": summary.texts,
            "texts_with_personal_data": summary.redacted_texts,
            "redactions": dict(summary.by_type),
            "same_entities": summary.same_entities,
            "same_entities_share": round((summary.same_entities or 0) / summary.texts, 4),
            "seconds": round(seconds, 1),
            "without_protection": {
                "texts_with_personal_data": plain.redacted_texts,
                "redactions": dict(plain.by_type),
                "same_entities": same_entities(before, after),
            },
        }
        print(f"{name}: {out[name]}", flush=True)
    return out


def demo_accuracy(anonymizer: Anonymizer, epochs: int | None) -> dict[str, Any]:
    from fusion.train import main as train

    rows = read_records(REPO / "data/demo/train.csv", required=("text", "label"))
    raw = [r["text"] for r in rows]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kgfuse-anon-bench-") as tmp:
        variants = {"raw": REPO / "data/demo/train.csv"}
        for name, linker in (
            ("anonymized", config_linker(REPO / "configs/demo.yaml")),
            ("anonymized_without_protection", None),
        ):
            texts, summary = anonymize_texts(raw, anonymizer, linker)
            variants[name] = Path(tmp) / f"{name}.csv"
            write_rows(variants[name], [{**r, "text": t} for r, t in zip(rows, texts, strict=True)])
            out[f"{name}_train_texts_changed"] = summary.redacted_texts
        for name, train_file in variants.items():
            overrides = [f"data.train={train_file}", f"output={Path(tmp) / name}", "train.seed=0"]
            overrides += [f"train.epochs={epochs}"] if epochs else []
            started = time.perf_counter()
            result = train(REPO / "configs/demo.yaml", overrides, progress=False)
            out[name] = {
                split: {k: round(v, 4) for k, v in m.items() if k in ("accuracy", "macro_f1")}
                for split, m in result.metrics.items()
                if split.startswith("test")
            }
            out[name]["train_seconds"] = round(time.perf_counter() - started, 1)
            print(f"{name}: {out[name]}", flush=True)
    for name in ("anonymized", "anonymized_without_protection"):
        out[f"{name}_accuracy_change"] = {
            split: round(out[name][split]["accuracy"] - out["raw"][split]["accuracy"], 4)
            for split in out["raw"]
            if split.startswith("test")
        }
    return out


def service_cost(anonymizer: Anonymizer, bundle: Path) -> dict[str, Any]:
    """Per text, ms to predict it alone, plain and as ``--anonymize`` does (link, redact,
    predict), the two in turn so that the machine's load falls on both alike."""
    import torch

    from fusion.predict import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_dir(bundle)
    texts = [r["text"] for r in read_records(REPO / "data/demo/test_unseen.csv")]

    def plain(text: str) -> None:
        predictor.predict([text])

    def anonymized(text: str) -> None:
        links = predictor.resources.link([text])
        redacted = anonymizer.redact([text], [mention_spans(links[0])])
        predictor.predict([redacted[0].text])

    for text in texts[:5]:  # warm-up
        plain(text)
        anonymized(text)
    times: dict[str, list[float]] = {"plain": [], "anonymized": []}
    ways = {"plain": plain, "anonymized": anonymized}
    for i, text in enumerate(texts):
        for name in list(ways) if i % 2 == 0 else list(ways)[::-1]:
            started = time.perf_counter()
            ways[name](text)
            times[name].append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {"bundle": str(bundle.relative_to(REPO)), "texts": len(texts)}
    for name, values in times.items():
        out[f"{name}_p50_ms"] = percentile(values, 50)
        out[f"{name}_p95_ms"] = percentile(values, 95)
    out["p50_ratio"] = out["anonymized_p50_ms"] / out["plain_p50_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--epochs", type=int, default=None, help="train.epochs (default: the demo config's)"
    )
    parser.add_argument("--skip-training", action="store_true", help="leave out part 3")
    parser.add_argument(
        "--bundle",
        type=Path,
        default=REPO / "runs/demo/fused/bundle",
        help="the bundle part 4 serves (kgfuse demo writes this one)",
    )
    args = parser.parse_args()
    os.chdir(REPO)  # the configs' relative paths
    anonymizer = Anonymizer()
    report: dict[str, Any] = {
        "matching": "span-level; overlap and exact",
        "quality": quality(anonymizer),
    }
    for name, q in report["quality"].items():
        print(f"{name} ({q['texts']} texts):")
        for kind, s in q["overlap"].items():
            e = q["exact"][kind]
            print(
                f"  {kind:8s} overlap P {s['precision']:.3f} R {s['recall']:.3f}   "
                f"exact P {e['precision']:.3f} R {e['recall']:.3f}   gold {s['gold']}"
            )
    report["kg_entities_kept"] = kept_entities(anonymizer)
    if not args.skip_training:
        report["demo_training"] = demo_accuracy(anonymizer, args.epochs)
        for name in ("anonymized", "anonymized_without_protection"):
            change = report["demo_training"][f"{name}_accuracy_change"]
            print(f"demo accuracy change ({name} - raw): {change}")
    elif args.json and args.json.exists():
        kept = json.loads(args.json.read_text(encoding="utf-8")).get("demo_training")
        if kept:
            report["demo_training"] = {**kept, "from_an_earlier_run": True}
    report["service_cost"] = cost = service_cost(anonymizer, args.bundle.resolve())
    print(
        f"one text, p50: {cost['plain_p50_ms']:.1f} ms plain, {cost['anonymized_p50_ms']:.1f} ms "
        f"with --anonymize ({cost['p50_ratio']:.2f}x)"
    )
    report["command"] = " ".join(["bench/anonymize.py", *sys.argv[1:]])
    if args.json:
        files.write_json(args.json, report)


if __name__ == "__main__":
    main()
