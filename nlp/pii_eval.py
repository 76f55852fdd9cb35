"""Span-level precision and recall of an anonymizer against gold spans, per type and overall.

Two ways of matching, both reported: ``overlap`` (a found span is right when it overlaps a gold
span of its type, and a gold span is recalled when a found span of its type overlaps it: what
matters for redaction, where "Dr. [PERSON]" and "[PERSON]" hide the same) and ``exact`` (same
type and the same characters).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlp.pii_patterns import PiiSpan

Gold = tuple[int, int, str]


def read_gold(path: str | Path) -> list[tuple[str, list[Gold]]]:
    """``(text, [(start, end, type), ...])`` from a JSONL file of ``{"text", "spans"}``."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            spans = [(s["start"], s["end"], s["type"]) for s in record["spans"]]
            rows.append((record["text"], spans))
    return rows


def _matches(a: Gold, b: Gold, exact: bool) -> bool:
    if a[2] != b[2]:
        return False
    return a[:2] == b[:2] if exact else a[0] < b[1] and b[0] < a[1]


def _ratio(n: int, d: int) -> float:
    return n / d if d else 1.0


def score(
    gold: Sequence[Sequence[Gold]], found: Sequence[Sequence[PiiSpan]], exact: bool = False
) -> dict[str, dict[str, Any]]:
    """``{type: {"precision", "recall", "gold", "found"}}`` and ``"all"`` over every type."""
    counts: dict[str, list[int]] = {}  # type -> [right found, found, recalled gold, gold]
    for golds, spans in zip(gold, found, strict=True):
        predicted = [(s.start, s.end, s.type) for s in spans]
        for p in predicted:
            c = counts.setdefault(p[2], [0, 0, 0, 0])
            c[0] += any(_matches(p, g, exact) for g in golds)
            c[1] += 1
        for g in golds:
            c = counts.setdefault(g[2], [0, 0, 0, 0])
            c[2] += any(_matches(g, p, exact) for p in predicted)
            c[3] += 1
    total = [sum(c[i] for c in counts.values()) for i in range(4)]
    return {
        kind: {
            "precision": round(_ratio(c[0], c[1]), 3),
            "recall": round(_ratio(c[2], c[3]), 3),
            "found": c[1],
            "gold": c[3],
        }
        for kind, c in [*sorted(counts.items()), ("all", total)]
    }
