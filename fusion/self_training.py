"""Self-training on unlabelled texts (``data.unlabeled``, ``train.self_training_rounds``).

After the model has trained, each round labels the unlabelled texts with its calibrated
predictions, keeps those at or above ``train.self_training_threshold``, and trains on, from the
current weights, on the labelled texts plus the kept ones. Selection stays on validation, as
everywhere: a round whose best validation score is below the score before it is undone, and
the rounds stop. Unlabelled texts that mention an entity of validation that no training text
mentions are left out, or validation would no longer judge entities new to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from fusion.checkpoint import load_trainable_state, trainable_state
from fusion.evaluate import evaluate_validation, predict_logits
from fusion.model import FusionClassifier
from fusion.resources import Prepared, Resources
from fusion.setup import Selection

# (examples, round number) -> trains ``model`` further on them, best validation weights kept
TrainMore = Callable[[list[Prepared], int], None]


def usable(
    unlabeled: Sequence[Prepared], train: Sequence[Prepared], val: Sequence[Prepared]
) -> list[Prepared]:
    """The unlabelled texts that name no entity validation holds out from training."""
    seen = {e for p in train for e in p.linked}
    held = {e for p in val for e in p.linked} - seen
    return [p for p in unlabeled if not held.intersection(p.linked)]


def self_train(
    model: FusionClassifier,
    resources: Resources,
    val: Sequence[Prepared],
    val_unseen: Sequence[bool],
    selection: Selection,
    unlabeled: Sequence[Prepared],
    rounds: int,
    threshold: float,
    temperature: float,
    train_more: TrainMore,
    calibrate: Callable[[], float],
) -> tuple[float, list[dict[str, Any]]]:
    """Run the rounds (module doc), pseudo-labelling at ``temperature``, refitted by
    ``calibrate`` after each kept round. Returns the last temperature and one record per
    round: texts labelled, the validation score before and after, kept."""
    records: list[dict[str, Any]] = []
    before, _ = selection.score(evaluate_validation(model, resources, val, val_unseen))
    for round_ in range(1, rounds + 1):
        logits = predict_logits(model, resources, unlabeled)
        probs = torch.softmax(torch.as_tensor(logits) / temperature, dim=-1).numpy()
        keep = np.flatnonzero(probs.max(1) >= threshold)
        record: dict[str, Any] = {
            "round": round_,
            "labelled": len(keep),
            "score_before": before,
        }
        if not len(keep):
            records.append({**record, "kept": False})
            break
        pseudo = [replace(unlabeled[int(i)], label=int(probs[i].argmax())) for i in keep]
        weights = trainable_state(model)
        train_more(pseudo, round_)
        after, _ = selection.score(evaluate_validation(model, resources, val, val_unseen))
        record.update(score_after=after, kept=after >= before)
        records.append(record)
        if after < before:
            load_trainable_state(model, weights)
            break
        before = after
        temperature = calibrate()
    return temperature, records
