"""The training loop: `fit` trains a model with early stopping and leaves its best weights in it.

AdamW with separate learning rates for the encoder's adapter and the rest, warmup then linear
decay, gradient clipping, FGM's adversarial pass and mention masking when on, early stopping on
validation, a checkpoint per epoch to resume from, and one line of ``metrics.jsonl`` per epoch.
`fusion.train.run` sets a run up around it and evaluates what it leaves.

Under torchrun every rank steps through its shard of each epoch's order
(fusion/distributed.py); rank 0 alone writes the checkpoint and the metrics and sends them
to the tracker (fusion/trackers.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from fusion import distributed
from fusion.checkpoint import (
    checkpoint_state,
    load_checkpoint,
    load_trainable_state,
    save_checkpoint,
    trainable_state,
)
from fusion.config import ConfigError, RunConfig
from fusion.evaluate import batches, evaluate_validation, forward
from fusion.model import FusionClassifier
from fusion.optimization import (
    FGM,
    Progress,
    class_weights,
    make_optimizer,
    mask_mentions,
    prefit_counts,
)
from fusion.resources import Prepared, Resources
from fusion.selection import Selection
from fusion.trackers import Guarded, epoch_metrics

# settings that change what a run reports, not what it learns: a resumed run may change them
TRACKING = ("tracker", "tracker_uri", "tracker_project")
# a fused model's KG branches, each also trained to classify on its own (`fit`)
BRANCHES = ("counts_logits", "graph_logits")


class StaleRunError(ConfigError):
    """The output folder holds a checkpoint of a run with other settings or data."""


def fit(
    model: FusionClassifier,
    resources: Resources,
    train: Sequence[Prepared],
    val: Sequence[Prepared],
    config: RunConfig,
    run_dir: Path,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    data_key: str = "",
    val_unseen: Sequence[bool] | None = None,
    selection: Selection | None = None,
    tracker: Guarded | None = None,
) -> tuple[int, int, float]:
    """Train with early stopping; leaves the best weights in ``model``.
    Returns (epochs run, best epoch, mean seconds per epoch).

    After every epoch the model is scored on validation: ``selection`` says on what (val:unseen
    by default, `fusion.selection.Selection`); the best epoch's weights are kept and ``patience``
    epochs without a better score stop the run. ``val_unseen`` flags the val:unseen texts.
    ``tracker`` (`fusion.trackers.tracking`) gets each epoch's figures too.

    A checkpoint from an earlier, interrupted run with the same settings is resumed; one
    written by other settings is refused (``train.epochs`` and ``train.patience`` may differ).
    ``on_epoch_end(epoch, record)`` runs after each epoch's checkpoint is written, with the
    epoch's metrics record (``record["score"]`` is what selection reads).

    Under torchrun every rank calls this with the same data: each steps through its shard of
    the epoch's order (``train.batch_size`` texts per rank and step), rank 0 writes the
    checkpoint and metrics, and every rank resumes from the same checkpoint."""
    settings = config.train
    unseen = list(val_unseen) if val_unseen is not None else [False] * len(val)
    selection = selection or Selection("all", "every validation text")
    _fit_counts_head(model, train, val, selection, unseen, settings.seed)
    optimizer = make_optimizer(model, config)
    # the same number of steps on every rank: shards are padded to the same length
    steps_per_epoch = math.ceil(len(distributed.shard(range(len(train)))) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs  # linear warm-up, then linear decay to 0
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * settings.warmup), total_steps
    )
    checkpoint = run_dir / "checkpoint"
    best, state = _start_or_resume(
        checkpoint,
        model,
        optimizer,
        scheduler,
        steps_per_epoch,
        settings_fingerprint(config, data_key),
    )
    main = distributed.is_main()
    steps = _Steps(
        model,
        resources,
        config,
        optimizer,
        scheduler,
        weights=class_weights(train, len(resources.labels)) if settings.class_weights else None,
        parallel=distributed.data_parallel(model, "forward_parts", _has_unused_parameters(model)),
        bar=Progress(steps_per_epoch * (settings.epochs - state["epoch"]), progress and main),
        mask_token=resources.text_encoder.tokenizer.mask_token or "[MASK]",
        adversary=(
            FGM(model.text_encoder, settings.adversarial)
            if settings.adversarial > 0 and model.text_encoder is not None
            else None
        ),
    )
    try:
        while state["epoch"] < settings.epochs and state["stale"] < settings.patience:
            epoch = state["epoch"] + 1
            status = f"best val:{selection.on} {max(state['best_score'], 0):.3f}"
            losses, seconds = steps.epoch(train, epoch, status)
            scores = evaluate_validation(model, resources, val, unseen)
            score, val_loss = selection.score(scores)
            improved = _keep_if_best(state, epoch, score, val_loss)
            if improved:
                best = trainable_state(model)
            state["epoch"] = epoch
            state["epoch_seconds"].append(seconds)
            record = _epoch_record(
                epoch, losses, score, selection, scores, improved, seconds, optimizer
            )
            if main:
                _write_epoch(run_dir, tracker, record)
                save_checkpoint(checkpoint, model, best, optimizer, state)
            distributed.barrier()  # no rank goes on (or stops) before the checkpoint is whole
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    finally:
        steps.close()
    load_trainable_state(model, best)
    return (
        state["epoch"],
        state["best_epoch"],
        float(np.mean(state["epoch_seconds"])) if state["epoch_seconds"] else 0.0,
    )


def _fit_counts_head(
    model: FusionClassifier,
    train: Sequence[Prepared],
    val: Sequence[Prepared],
    selection: Selection,
    unseen: list[bool],
    seed: int,
) -> None:
    """Fit a fused model's counts head alone (`prefit_counts`), then freeze it: the joint
    training adds text and graph on top of it. Deterministic for a seed, so a resumed run fits
    the same head again; a head already fitted and frozen (self-training trains on from it)
    stays as it is."""
    if not model.counts_per_label or any(p.requires_grad for p in model.counts_head.parameters()):
        prefit_counts(model, train, val, selection, unseen, seed)
    if model.counts_per_label:
        for p in model.counts_head.parameters():
            p.requires_grad_(False)


def _start_or_resume(
    checkpoint: Path,
    model: FusionClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    steps_per_epoch: int,
    fingerprint: str,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(best weights, training state): a fresh start, or where the interrupted run with the
    same settings (``fingerprint``) left off, weights, optimizer and schedule restored."""
    state: dict[str, Any] = {
        "epoch": 0,
        "best_score": -1.0,
        "best_loss": float("inf"),
        "best_epoch": 0,
        "stale": 0,
        "epoch_seconds": [],
        "settings": fingerprint,
    }
    previous = checkpoint_state(checkpoint)
    best = trainable_state(model)
    if not distributed.agree(previous["epoch"] if previous is not None else -1):
        raise distributed.DistributedError(
            f"the ranks see different checkpoints in {checkpoint}: put `output` on a "
            "filesystem that every node shares"
        )
    if previous is None:
        return best, state
    if previous.get("settings") != fingerprint:
        raise StaleRunError(
            f"{checkpoint} holds a run with other settings or data; delete that folder to "
            "start afresh, or choose another output"
        )
    best, state = load_checkpoint(checkpoint, model, optimizer)
    # put the schedule where the interrupted run left it (no optimizer step has run yet)
    scheduler.last_epoch = state["epoch"] * steps_per_epoch
    for group, base, factor in zip(
        optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["lr"] = base * factor(scheduler.last_epoch)
    return best, state


@dataclass
class _Steps:
    """One epoch of optimizer steps: the loss (with the branch losses), FGM's adversarial
    pass, gradient clipping, the optimizer and the schedule."""

    model: FusionClassifier
    resources: Resources
    config: RunConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    weights: torch.Tensor | None
    parallel: nn.Module | None
    bar: Progress
    mask_token: str
    adversary: FGM | None

    def epoch(
        self, train: Sequence[Prepared], epoch: int, status: str
    ) -> tuple[list[float], float]:
        """Step through epoch ``epoch``'s order of ``train`` (this rank's shard); returns the
        batch losses and the epoch's seconds (the mean over the ranks)."""
        settings = self.config.train
        order = torch.randperm(
            len(train), generator=torch.Generator().manual_seed(settings.seed * 1000 + epoch)
        )
        masking = random.Random(settings.seed * 1000 + epoch)
        self.model.train()
        started, losses = time.perf_counter(), []
        for batch in batches(train, settings.batch_size, distributed.shard(order.tolist())):
            texts = None
            if settings.mask_mentions > 0:
                texts = [
                    mask_mentions(p, settings.mask_mentions, self.mask_token, masking)
                    for p in batch
                ]
            losses.append(self.step(batch, texts))
            self.bar.update(
                f"epoch {epoch}/{settings.epochs} loss {np.mean(losses[-20:]):.3f} {status}"
            )
        return losses, distributed.all_reduce_mean(time.perf_counter() - started)

    def step(self, batch: list[Prepared], texts: list[str] | None) -> float:
        """One optimizer step on ``batch`` (``texts``: its mention-masked texts); its loss."""
        parts = forward(self.model, self.resources, batch, self.parallel, texts)
        loss = self.loss(parts, batch)
        self.optimizer.zero_grad()
        loss.backward()
        if self.adversary is not None and self.adversary.perturb():
            # FGM: the same batch again, its word embeddings pushed up the loss gradient
            attacked = forward(self.model, self.resources, batch, self.parallel, texts)["logits"]
            target = _labels(batch, attacked)
            nn.functional.cross_entropy(attacked, target, weight=self.weights).backward()
            self.adversary.clear()
        if self.config.train.clip > 0:
            nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.train.clip
            )
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def loss(self, parts: dict[str, torch.Tensor], batch: list[Prepared]) -> torch.Tensor:
        """Cross-entropy of the logits; a fused model's KG branches (`BRANCHES`) also learn
        to classify on their own, weighted by ``train.branch_loss``."""
        target = _labels(batch, parts["logits"])
        loss = nn.functional.cross_entropy(parts["logits"], target, weight=self.weights)
        if self.config.train.branch_loss > 0 and self.model.config.mode == "fused":
            for key in BRANCHES:
                if key in parts:
                    branch = nn.functional.cross_entropy(parts[key], target, weight=self.weights)
                    loss = loss + self.config.train.branch_loss * branch
        return loss

    def close(self) -> None:
        self.bar.close()
        if self.adversary is not None:
            self.adversary.close()


def _labels(batch: list[Prepared], logits: torch.Tensor) -> torch.Tensor:
    """The batch's gold labels, on the logits' device."""
    return torch.tensor([p.label for p in batch], device=logits.device)


def _keep_if_best(state: dict[str, Any], epoch: int, score: float, val_loss: float) -> bool:
    """Whether ``epoch`` is the best so far (then recorded in ``state``; else one more stale
    epoch). A tie (common on small validation sets) goes to the lower validation loss."""
    improved = score > state["best_score"] or (
        score == state["best_score"] and val_loss < state["best_loss"]
    )
    if improved:
        state.update(best_score=score, best_loss=val_loss, best_epoch=epoch, stale=0)
    else:
        state["stale"] += 1
    return improved


def _epoch_record(
    epoch: int,
    losses: list[float],
    score: float,
    selection: Selection,
    scores: dict[str, dict[str, Any]],
    improved: bool,
    seconds: float,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """The epoch's line of metrics.jsonl (and what ``on_epoch_end`` receives)."""
    return {
        "epoch": epoch,
        "train_loss": distributed.all_reduce_mean(float(np.mean(losses))),
        "score": score,
        "selection": selection.on,
        **{
            f"{k}_{m}": v.get(m)
            for k, v in scores.items()
            for m in ("accuracy", "macro_f1", "loss")
        },
        "best": improved,
        "seconds": round(seconds, 3),
        "lr": [g["lr"] for g in optimizer.param_groups],
    }


def _write_epoch(run_dir: Path, tracker: Guarded | None, record: dict[str, Any]) -> None:
    """Append the epoch's record to metrics.jsonl, and send its figures to the tracker."""
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if tracker is not None:
        tracker.log_metrics(record["epoch"], epoch_metrics(record))


def _has_unused_parameters(model: FusionClassifier) -> bool:
    """Whether some trainable parameters never reach the loss, which DDP must then be told
    (``find_unused_parameters``, a search of the autograd graph every step): graph mode
    computes but drops the text head and has no use for the gate; fused mode without label
    nodes never queries them. Other layouts use every parameter in every step."""
    mode = model.config.mode
    return mode == "graph" or (mode == "fused" and not model.uses_label_nodes)


def settings_fingerprint(config: RunConfig, data_key: str = "") -> str:
    """What a resumed run must share with the interrupted one: the config (but epochs and
    patience, which may grow, and the tracker settings), the data and KG (``data_key``), and
    the number of processes (``train.batch_size`` is per process, so it sets the texts per
    optimizer step)."""
    settings = config.to_dict()
    settings["train"] = {
        k: v for k, v in settings["train"].items() if k not in ("epochs", "patience", *TRACKING)
    }
    settings["train"]["tensorboard"] = False  # the key before train.tracker: old checkpoints resume
    settings["data_key"] = data_key
    if distributed.world_size() > 1:  # absent in one process: older checkpoints stay valid
        settings["world_size"] = distributed.world_size()
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
