"""Labelled texts for training and evaluation: reading, splitting, checking.

Splits come from separate files (``train``, ``val``, named ``tests``), from a split column of
one file, or from a seeded stratified split of one file. Every problem is reported with the file
and what to change: a missing column lists the columns found; a label in val or test that train
never saw is refused.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlp.texts import DataError, read_records


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    fields: dict[str, str] = field(default_factory=dict, compare=False)  # the row's other columns


@dataclass
class Splits:
    """Train, validation and any number of named test sets, with the label list (sorted).
    ``val_unseen`` flags the validation texts that mention an entity no training text mentions
    (fusion/split.py); empty until training has linked the texts."""

    train: list[Example]
    val: list[Example]
    tests: dict[str, list[Example]]
    labels: list[str]
    val_unseen: list[bool] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        unseen = sum(self.val_unseen)
        val = (
            {"val:unseen": unseen, "val:seen": len(self.val) - unseen}
            if self.val_unseen
            else {"val": len(self.val)}
        )
        return {
            "train": len(self.train),
            **val,
            **{f"test:{k}": len(v) for k, v in self.tests.items()},
        }


def read_examples(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> list[Example]:
    rows = read_records(path, required=(text_column, label_column))
    return [
        Example(
            r[text_column],
            r[label_column].strip(),
            {k: v for k, v in r.items() if k not in (text_column, label_column)},
        )
        for r in rows
    ]


def check_fraction(fraction: float, name: str = "a split fraction") -> None:
    """Refuse a share of the texts or entities to hold out that is not strictly between 0 and 1
    (``name`` says which option gave it)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(
            f"{name} must lie strictly between 0 and 1, e.g. 0.25 (got {fraction:g}: "
            f"{'nothing' if fraction <= 0 else 'everything'} would be held out)"
        )


def refuse_unknown_labels(
    path: str | Path, examples: Sequence[Example], labels: Sequence[str]
) -> None:
    """Refuse labelled ``examples`` (read from ``path``) with a label outside ``labels``, the
    model's."""
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise DataError(
            f"{path} has label(s) {unknown} the model does not know; its labels are {list(labels)}"
        )


def stratified_indices(
    labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """``(rest, held)`` positions with about ``fraction`` of each label in ``held`` (at least one
    per label with two or more texts), in input order, deterministic for a seed."""
    check_fraction(fraction)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        take = round(len(idx) * fraction) if len(idx) > 1 else 0
        held.update(idx[: max(take, 1 if len(idx) > 1 else 0)])
    return [i for i in range(len(labels)) if i not in held], sorted(held)


def stratified_split(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """``(rest, held)`` with about ``fraction`` of each label in ``held`` (at least one per label
    with two or more examples), deterministic for a seed."""
    rest, held = stratified_indices([e.label for e in examples], fraction, seed)
    return [examples[i] for i in rest], [examples[i] for i in held]


def check_labels(splits: Splits, where: dict[str, str]) -> None:
    """Refuse labels in val/test that train never saw, naming the file and the labels."""
    known = set(splits.labels)
    problems = []
    for name, examples in [
        ("val", splits.val),
        *((f"test:{k}", v) for k, v in splits.tests.items()),
    ]:
        unseen = sorted({e.label for e in examples} - known)
        if unseen:
            problems.append(
                f"{where.get(name, name)} has label(s) {unseen} that the training data never shows"
            )
    if problems:
        raise DataError("; ".join(problems) + f"; the training labels are {sorted(known)}")


def load_splits(
    *,
    train: str | Path | None = None,
    val: str | Path | None = None,
    tests: dict[str, str | Path] | None = None,
    path: str | Path | None = None,
    split_column: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
    carve_val: bool = True,
) -> Splits:
    """Build the splits from separate files (``train`` [+ ``val``] [+ ``tests``]) or one ``path``
    (with ``split_column`` values train/val/test, or split here, stratified and seeded).
    Without a val file, ``val_fraction`` of train is carved out at random; with
    ``carve_val=False`` val stays empty (training then holds out entities: fusion/split.py)."""
    tests = dict(tests or {})
    where: dict[str, str] = {}
    if (train is None) == (path is None):
        raise DataError(
            "give either a train file (plus optional val/test files) or one data file to split, not both"
        )
    if train is not None:
        train_ex = read_examples(train, text_column, label_column)
        where["train"] = str(train)
        if val is not None:
            val_ex = read_examples(val, text_column, label_column)
            where["val"] = str(val)
        elif carve_val:
            train_ex, val_ex = stratified_split(train_ex, val_fraction, seed)
        else:
            val_ex = []
        test_sets = {name: read_examples(p, text_column, label_column) for name, p in tests.items()}
        where.update({f"test:{n}": str(p) for n, p in tests.items()})
    else:
        assert path is not None
        everything = read_examples(path, text_column, label_column)
        if split_column is not None:
            if split_column not in everything[0].fields:
                raise DataError(
                    f"{path}: no split column {split_column!r}; the columns are {[text_column, label_column, *everything[0].fields]}"
                )
            parts: dict[str, list[Example]] = defaultdict(list)
            for ex in everything:
                parts[ex.fields[split_column].strip().lower()].append(ex)
            unknown = sorted(set(parts) - {"train", "val", "validation", "dev", "test"})
            if unknown:
                raise DataError(
                    f"{path}: split column {split_column!r} has values {unknown}; use train, val or test"
                )
            train_ex = parts["train"]
            val_ex = parts["val"] + parts["validation"] + parts["dev"]
            if not val_ex and carve_val:
                train_ex, val_ex = stratified_split(train_ex, val_fraction, seed)
            test_sets = {"test": parts["test"]} if parts["test"] else {}
        else:
            rest = everything
            test_sets = {}
            if test_fraction > 0:
                rest, held = stratified_split(rest, test_fraction, seed)
                test_sets = {"test": held}
            if carve_val:
                train_ex, val_ex = stratified_split(
                    rest, val_fraction / (1 - test_fraction), seed + 1
                )
            else:
                train_ex, val_ex = rest, []
        where = {k: str(path) for k in ["train", "val", *(f"test:{n}" for n in test_sets)]}
    if not train_ex:
        raise DataError(f"{where.get('train', 'the training data')}: no training examples")
    splits = Splits(train_ex, val_ex, test_sets, sorted({e.label for e in train_ex}))
    check_labels(splits, where)
    return splits
