"""Batches, forward passes and validation scores: what training, evaluation and comparison share.

`evaluate_shared` splits the texts between the ranks under torchrun and adds their confusion
counts and losses up, so every rank gets the same metrics and takes the same early-stopping
decision; in a single process it is `evaluate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fusion import distributed
from fusion.metrics import classification_metrics
from fusion.model import FusionClassifier
from fusion.resources import Prepared, Resources


def batches(
    examples: Sequence[Prepared], batch_size: int, order: Sequence[int] | None = None
) -> Iterator[list[Prepared]]:
    order = list(order) if order is not None else list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        yield [examples[i] for i in order[start : start + batch_size]]


def forward(
    model: FusionClassifier,
    resources: Resources,
    batch: list[Prepared],
    parallel: nn.Module | None = None,
    texts: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """``model.forward_parts`` on ``batch``; through ``parallel`` (the DDP wrapper of that
    method, `distributed.data_parallel`) when given, so that gradients are averaged.
    ``texts`` replaces the batch's texts (mention masking)."""
    tokens, graph, counts = resources.inputs(model, batch, texts)
    return (parallel if parallel is not None else model.forward_parts)(tokens, graph, counts=counts)


@torch.no_grad()
def predict_logits(
    model: FusionClassifier,
    resources: Resources,
    examples: Sequence[Prepared],
    batch_size: int = 64,
) -> np.ndarray:
    model.eval()
    out = [
        forward(model, resources, batch)["logits"].numpy()
        for batch in batches(examples, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(resources.labels)), dtype=np.float32)


def evaluate(
    model: FusionClassifier, resources: Resources, examples: Sequence[Prepared]
) -> dict[str, Any]:
    logits = predict_logits(model, resources, examples)
    gold = [p.label for p in examples]
    scores = classification_metrics(gold, logits.argmax(1).tolist(), resources.labels)
    if examples and min(gold) >= 0:
        scores["loss"] = float(
            nn.functional.cross_entropy(torch.as_tensor(logits), torch.tensor(gold))
        )
    return scores


def evaluate_shared(
    model: FusionClassifier, resources: Resources, examples: Sequence[Prepared]
) -> dict[str, Any]:
    """`evaluate`, with ``examples`` split between the ranks: each scores its share, and the
    confusion counts and summed losses are added up, so every rank gets the same metrics and
    takes the same early-stopping decision. In a single process, `evaluate` itself."""
    if not distributed.is_distributed():
        return evaluate(model, resources, examples)
    share = [examples[i] for i in distributed.shard(range(len(examples)), pad=False)]
    logits = torch.as_tensor(predict_logits(model, resources, share))
    gold = torch.tensor([p.label for p in share], dtype=torch.long)
    assert bool((gold >= 0).all()), "training texts are always labelled"
    loss = float(nn.functional.cross_entropy(logits, gold, reduction="sum")) if share else 0.0
    gold_all, predicted_all = distributed.all_reduce_confusion(
        gold.tolist(), logits.argmax(1).tolist(), len(resources.labels)
    )
    scores = classification_metrics(gold_all, predicted_all, resources.labels)
    total = float(distributed.all_reduce_sum(np.array([loss]))[0])
    if gold_all:
        scores["loss"] = total / len(gold_all)
    return scores


def evaluate_validation(
    model: FusionClassifier, resources: Resources, val: Sequence[Prepared], unseen: Sequence[bool]
) -> dict[str, dict[str, Any]]:
    """Metrics of "val:unseen" and "val:seen" (either may be empty), shared by the ranks."""
    parts = {
        "val:unseen": [p for p, u in zip(val, unseen, strict=True) if u],
        "val:seen": [p for p, u in zip(val, unseen, strict=True) if not u],
    }
    out = {name: evaluate_shared(model, resources, part) for name, part in parts.items() if part}
    out["val"] = evaluate_shared(model, resources, val)
    return out
