"""What validation selects on: val:unseen when it can rank models, else a stated fallback.

Early stopping, the checkpoint kept, calibration and tuning all read validation through one
`Selection`, which `fusion.setup.plan_run` chooses (`choose_selection`) from the size of
val:unseen: the texts about entities no training text mentions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_UNSEEN_TEXTS = 30  # fewer val:unseen texts than this cannot rank models alone
MIN_UNSEEN_ENTITIES = 5  # nor can fewer held-out entities


class SelectionWarning(UserWarning):
    """Validation cannot select on val:unseen alone; the warning names the figures."""


@dataclass(frozen=True)
class Selection:
    """What early stopping, checkpoint choice, calibration and tuning read from validation.

    ``on``: "unseen" (val:unseen accuracy), "mix" (the mean of val:unseen and val:seen
    accuracy, when val:unseen is too small to rank models alone) or "all" (no val:unseen)."""

    on: str
    reason: str

    def score(self, metrics: dict[str, dict[str, Any]]) -> tuple[float, float]:
        """(accuracy, loss) to select on, from the metrics of "val:unseen" and "val:seen"."""
        parts = {"unseen": ["val:unseen"], "mix": ["val:unseen", "val:seen"], "all": ["val"]}
        chosen = [metrics[k] for k in parts[self.on] if metrics.get(k, {}).get("n")]
        if not chosen:
            return 0.0, float("inf")
        accuracy = float(np.mean([m["accuracy"] for m in chosen]))
        loss = float(np.mean([m.get("loss", float("inf")) for m in chosen]))
        return accuracy, loss

    def flags(self, val_unseen: list[bool]) -> list[bool]:
        """Which validation texts calibration and the reference fit on."""
        if self.on == "unseen":
            return list(val_unseen)
        return [True] * len(val_unseen)


def choose_selection(unseen_texts: int, held_entities: int, total: int) -> Selection:
    """val:unseen when it is big enough to rank models; else a stated mix, with a warning."""
    if unseen_texts >= MIN_UNSEEN_TEXTS and held_entities >= MIN_UNSEEN_ENTITIES:
        return Selection(
            "unseen",
            f"{unseen_texts} val:unseen texts about {held_entities} entities no training text "
            "mentions",
        )
    if unseen_texts == 0:
        reason = (
            f"no validation text mentions an entity that training lacks ({total} val texts); "
            "selecting on all validation texts, which rewards memorised names"
        )
        warnings.warn(reason, SelectionWarning, stacklevel=2)
        return Selection("all", reason)
    reason = (
        f"only {unseen_texts} val:unseen texts about {held_entities} held-out entities (at least "
        f"{MIN_UNSEEN_TEXTS} texts and {MIN_UNSEEN_ENTITIES} entities rank models alone); "
        "selecting on the mean of val:unseen and val:seen accuracy"
    )
    warnings.warn(reason, SelectionWarning, stacklevel=2)
    return Selection("mix", reason)
