#!/usr/bin/env python3
"""Validate bench/gold/symptom2disease_linking.jsonl against the shared data.

Run from anywhere:  python bench/gold/check_gold.py
Reads the CSV and KG from <repo>/../shared/data/symptom2disease/ (not copied into the repo).
Standard library only. Exits 1 if any problem is found, 0 otherwise.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(__file__).resolve().parents[3] / "shared/data/symptom2disease"
GOLD = HERE / "symptom2disease_linking.jsonl"
N_SAMPLE, SEED = 100, 13
SKB = "http://example.org/symptomkb/"


def kg_entities(ttl: Path) -> dict[str, str]:
    """IRI -> 'Symptom' | 'Disease' for every typed entity in kg.ttl (its subjects start a line)."""
    pat = re.compile(r"^skb:(\S+)\s+a\s+skb:(Symptom|Disease)\s*;", re.M)
    return {SKB + local: kind for local, kind in pat.findall(ttl.read_text(encoding="utf-8"))}


def expected_rows(rows: list[dict]) -> list[int]:
    """The selection procedure documented in README.md."""
    seen, unique_rows = set(), []
    for n, r in enumerate(rows):
        if r["text"] in seen:
            continue
        seen.add(r["text"])
        unique_rows.append(n)
    return sorted(random.Random(SEED).sample(sorted(unique_rows), N_SAMPLE))


def main() -> int:
    problems: list[str] = []
    bad = problems.append

    with open(DATA / "Symptom2Disease.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ents = kg_entities(DATA / "kg.ttl")
    if len(ents) != 172:
        bad(f"expected 172 typed KG entities (131 symptoms + 41 diseases), parsed {len(ents)}")

    records = []
    for ln, line in enumerate(GOLD.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            bad(f"line {ln}: blank line")
            continue
        try:
            records.append((ln, json.loads(line)))
        except json.JSONDecodeError as e:
            bad(f"line {ln}: invalid JSON ({e})")

    row_ids = []
    for ln, rec in records:
        where = f"line {ln}"
        if set(rec) != {"index", "row", "label", "mentions"}:
            bad(f"{where}: keys {sorted(rec)} != ['index', 'label', 'mentions', 'row']")
            continue
        n = rec["row"]
        if not isinstance(n, int) or not 0 <= n < len(rows):
            bad(f"{where}: row {n!r} out of range")
            continue
        row_ids.append(n)
        src = rows[n]
        where = f"line {ln} (row {n})"
        if rec["index"] != int(src["index"]) or rec["label"] != src["label"]:
            bad(
                f"{where}: index/label {rec['index']!r}/{rec['label']!r} != CSV {src['index']}/{src['label']}"
            )
        text = src["text"]
        prev_end = -1
        for m in rec["mentions"]:
            if set(m) != {"start", "end", "text", "iri"}:
                bad(f"{where}: mention keys {sorted(m)}")
                continue
            s, e = m["start"], m["end"]
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
                bad(f"{where}: bad offsets {s!r}:{e!r}")
                continue
            if text[s:e] != m["text"]:
                bad(f"{where}: text[{s}:{e}]={text[s:e]!r} != {m['text']!r}")
            if m["text"] != m["text"].strip():
                bad(f"{where}: span {m['text']!r} has leading/trailing whitespace")
            if (s > 0 and text[s - 1].isalnum() and text[s].isalnum()) or (
                e < len(text) and text[e].isalnum() and text[e - 1].isalnum()
            ):
                bad(f"{where}: span {m['text']!r} cuts through a word")
            if m["iri"] not in ents:
                bad(f"{where}: IRI {m['iri']} not a skb:Symptom/skb:Disease in kg.ttl")
            if s < prev_end:
                bad(
                    f"{where}: mention at {s} overlaps or is out of order (previous ends {prev_end})"
                )
            prev_end = max(prev_end, e)

    if len(row_ids) != N_SAMPLE or len(set(row_ids)) != N_SAMPLE:
        bad(
            f"expected {N_SAMPLE} distinct rows, got {len(row_ids)} records / {len(set(row_ids))} distinct"
        )
    if row_ids != sorted(row_ids):
        bad("records are not sorted by row")
    exp = expected_rows(rows)
    if sorted(set(row_ids)) != exp:
        bad(
            f"selected rows differ from the documented sample: "
            f"missing {sorted(set(exp) - set(row_ids))}, extra {sorted(set(row_ids) - set(exp))}"
        )
    keys = {(rec["index"], rec["label"]) for _, rec in records if "index" in rec and "label" in rec}
    if len(keys) != len(records):
        bad("(index, label) pairs are not unique")

    mentions = [m for _, rec in records for m in rec.get("mentions", [])]
    print(f"texts: {len(records)}")
    print(f"mentions: {len(mentions)}")
    print(f"texts with >=1 mention: {sum(1 for _, r in records if r.get('mentions'))}")
    print(f"distinct IRIs: {len({m.get('iri') for m in mentions})}")
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
