"""Train a fused model from one YAML config: ``kgfuse train configs/NAME.yaml [key=value ...]``.

Read it top to bottom: set-up (seeds, data, KG, linker, node features), the model, the loop
(AdamW with separate learning rates for the encoder's adapter and the rest, warmup then linear
decay, gradient clipping, early stopping on val macro-F1, a checkpoint per epoch to resume
from), then evaluation of the best weights and the bundle.

Everything goes under ``config.output``: ``bundle/`` (what `predict`, `explain` and `export` load),
``checkpoint/`` (resume state), ``metrics.jsonl`` (one line per epoch), ``cache/`` (node
features), and ``tensorboard/`` when enabled.

Under ``torchrun --nproc_per_node=N`` the same script trains with DDP (fusion/distributed.py):
each rank steps through its shard of every epoch's order, ``train.batch_size`` texts per rank
and step (N times that per optimizer step in all); validation scores are summed over the ranks
so every rank stops at the same epoch; rank 0 alone writes under ``config.output``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from fusion import distributed
from fusion.augment import swap_mentions
from fusion.calibration import calibration_report, fit_temperature
from fusion.checkpoint import (
    checkpoint_state,
    load_checkpoint,
    load_trainable_state,
    save_checkpoint,
    trainable_state,
)
from fusion.config import ConfigError, RunConfig, load_config
from fusion.encoder import TextEncoder
from fusion.evaluate import (
    batches,
    evaluate_shared,
    evaluate_validation,
    forward,
    predict_logits,
)
from fusion.model import FusionClassifier
from fusion.optimization import (
    FGM,
    Progress,
    class_weights,
    make_optimizer,
    mask_mentions,
    prefit_counts,
)
from fusion.path_graph import walk_length
from fusion.resources import Prepared, Resources
from fusion.self_training import self_train, usable
from fusion.setup import RunPlan, Selection, Workspace, plan_run
from nlp.texts import check_texts, read_records


@dataclass
class TrainResult:
    run_dir: Path
    bundle: Path
    metrics: dict[str, dict[str, Any]]  # split name -> metrics
    epochs_run: int
    seconds_per_epoch: float
    best_epoch: int
    temperature: float = 1.0
    choices: dict[str, dict[str, object]] = field(default_factory=dict)  # the auto settings


# a fused model's KG branches, each also trained to classify on its own (`fit`)
BRANCHES = ("counts_logits", "graph_logits")


class StaleRunError(ConfigError):
    """The output folder holds a checkpoint of a run with other settings or data."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----- set-up -----
def build_model(config: RunConfig, resources: Resources) -> FusionClassifier:
    if config.model.mode == "counter" and resources.counter is None:
        raise ConfigError("model.mode=counter counts paths to label nodes: set kg.label_map")
    encoder = TextEncoder(config.encoder) if config.model.mode != "graph" else None
    return FusionClassifier(
        config.model,
        encoder,
        resources.features,
        2 * resources.graph.num_relations,
        len(resources.labels),
        resources.text_encoder.hidden_size,
        uses_label_nodes=bool(resources.label_nodes),
        counter_dim=resources.counter.dims if resources.counter is not None else 0,
        path_rounds=walk_length(resources.subgraph.hops or 1),
    )


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
) -> tuple[int, int, float]:
    """Train with early stopping; leaves the best weights in ``model``.
    Returns (epochs run, best epoch, mean seconds per epoch).

    After every epoch the model is scored on validation: ``selection`` says on what (val:unseen
    by default, `fusion.setup.Selection`); the best epoch's weights are kept and ``patience``
    epochs without a better score stop the run. ``val_unseen`` flags the val:unseen texts.

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
    writer = _tensorboard(run_dir) if settings.tensorboard and main else None
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
                _write_epoch(run_dir, writer, record)
                save_checkpoint(checkpoint, model, best, optimizer, state)
            distributed.barrier()  # no rank goes on (or stops) before the checkpoint is whole
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    finally:
        steps.close()
        if writer is not None:
            writer.close()
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


def _write_epoch(run_dir: Path, writer: Any, record: dict[str, Any]) -> None:
    """Append the epoch's record to metrics.jsonl, and its figures to TensorBoard if on."""
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None:
        for key in ("train_loss", "score", "val:unseen_accuracy", "val:seen_accuracy"):
            if record.get(key) is not None:
                writer.add_scalar(key, record[key], record["epoch"])


def _has_unused_parameters(model: FusionClassifier) -> bool:
    """Whether some trainable parameters never reach the loss, which DDP must then be told
    (``find_unused_parameters``, a search of the autograd graph every step): graph mode
    computes but drops the text head and has no use for the gate; fused mode without label
    nodes never queries them. Other layouts use every parameter in every step."""
    mode = model.config.mode
    return mode == "graph" or (mode == "fused" and not model.uses_label_nodes)


def settings_fingerprint(config: RunConfig, data_key: str = "") -> str:
    """What a resumed run must share with the interrupted one: the config (but epochs and
    patience, which may grow), the data and KG (``data_key``), and the number of processes
    (``train.batch_size`` is per process, so it sets the texts per optimizer step)."""
    settings = config.to_dict()
    settings["train"] = {
        k: v for k, v in settings["train"].items() if k not in ("epochs", "patience")
    }
    settings["data_key"] = data_key
    if distributed.world_size() > 1:  # absent in one process: older checkpoints stay valid
        settings["world_size"] = distributed.world_size()
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def data_fingerprint(resources: Resources, *parts: Sequence[Prepared]) -> str:
    """Texts, labels, links and the KG of a run: a checkpoint is reused only when all match."""
    h = hashlib.sha256(resources.graph.fingerprint.encode())
    for part in parts:
        for p in part:
            h.update(f"{p.label}\t{p.linked}\t{p.text}\n".encode())
    return h.hexdigest()[:16]


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError(
            "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
        ) from e
    return SummaryWriter(str(run_dir / "tensorboard"))


# ----- the script -----
def run(
    config: RunConfig,
    progress: bool = True,
    workspace: Workspace | None = None,
    plan: RunPlan | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    use_kg: bool = True,
) -> TrainResult:
    """Train, calibrate, evaluate and write the bundle for ``config``.

    ``workspace`` (the KG, linker and encoder) and ``plan`` (splits, links, automatic settings
    and resources, `fusion.setup.plan_run`) may be passed in to share them between runs
    (`kgfuse compare`, `kgfuse tune`); a plan's resolved config then replaces ``config``'s
    ``auto`` settings. ``use_kg=False`` is the no-KG control (nothing linked, no edges).

    Every input (config, data, KG, label map) is read and checked before anything is written:
    a run that fails on its inputs leaves no output folder behind.

    Under torchrun (``WORLD_SIZE`` > 1) every rank runs this and returns the same metrics;
    rank 0 alone writes the node-feature cache (at the end), the checkpoints,
    ``metrics.jsonl`` and the bundle, which exists once this returns on any rank."""
    from fusion.bundle import save_bundle

    started = time.perf_counter()
    distributed.init_from_env()  # the model trains on the CPU: gloo
    run_dir = Path(config.output)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    unlabeled_texts = _unlabeled_texts(config)  # read and checked before anything is written
    with distributed.main_first():
        workspace = workspace or Workspace.open(config, run_dir)
        plan = plan or plan_run(config, workspace)
    config = replace(
        config,
        subgraph=plan.config.subgraph,
        train=replace(config.train, mask_label_facts=plan.config.train.mask_label_facts),
    )
    resources, splits = plan.resources.walking(config.model.reads_walks), plan.splits
    index = {label: i for i, label in enumerate(splits.labels)}

    def prepare(
        examples: list[Any],
        part: str,
        masked: float | list[bool] = 0.0,
        hidden: frozenset[int] = frozenset(),
    ) -> list[Prepared]:
        labels = [index[e.label] for e in examples]
        spans = plan.spans[part] if use_kg else None
        return resources.prepare(
            [e.text for e in examples], labels, masked, use_kg, config.train.seed, spans, hidden
        )

    # training and validation miss the label facts of validation's held-out entities (as a
    # new entity's are missing); tests see the KG as the bundle will
    train = prepare(splits.train, "train", plan.train_masked, plan.hidden)
    if use_kg and config.train.swap_mentions > 0:
        train = train + swap_mentions(
            resources, train, config.train.swap_mentions, config.train.seed, plan.hidden
        )
    val = prepare(splits.val, "val", plan.val_masked, plan.hidden)
    unlabeled: list[Prepared] = []
    if unlabeled_texts:
        masked = config.train.mask_label_facts or 0.0
        unlabeled = usable(
            resources.prepare(
                unlabeled_texts, None, masked, use_kg, config.train.seed, None, plan.hidden
            ),
            train,
            val,
        )
    tests = {name: prepare(ex, f"test:{name}") for name, ex in splits.tests.items()}

    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)  # the inputs are all read and checked
    distributed.barrier()
    seed_everything(config.train.seed)  # the model's initialisation does not depend on linking
    model = build_model(config, resources)
    data_key = data_fingerprint(resources, train, val)
    setup_s = time.perf_counter() - started  # KG, linker, links, subgraphs, automatic choices
    epochs, best_epoch, seconds = fit(
        model,
        resources,
        train,
        val,
        config,
        run_dir,
        progress,
        on_epoch_end,
        data_key,
        splits.val_unseen,
        plan.selection,
    )

    # temperature scaling on what validation selects on: never on a test text
    chosen = [p for p, f in zip(val, plan.selection.flags(splits.val_unseen), strict=True) if f]

    def calibrate() -> float:
        return fit_temperature(
            predict_logits(model, resources, chosen), np.array([p.label for p in chosen])
        )

    temperature = calibrate()
    self_training: list[dict[str, Any]] = []
    if unlabeled:

        def train_more(pseudo: list[Prepared], round_: int) -> None:
            more, folder = train + pseudo, run_dir / f"self-training-{round_}"
            if distributed.is_main():
                folder.mkdir(exist_ok=True)
            fit(
                model,
                resources,
                more,
                val,
                config,
                folder,
                progress,
                None,
                data_fingerprint(resources, more, val),
                splits.val_unseen,
                plan.selection,
            )

        temperature, self_training = self_train(
            model,
            resources,
            val,
            splits.val_unseen,
            plan.selection,
            unlabeled,
            config.train.self_training_rounds,
            config.train.self_training_threshold,
            temperature,
            train_more,
            calibrate,
        )
    metrics = evaluate_validation(model, resources, val, splits.val_unseen)
    metrics |= {f"test:{n}": evaluate_shared(model, resources, ex) for n, ex in tests.items()}
    parts = {
        "val": val,
        "val:unseen": [p for p, u in zip(val, splits.val_unseen, strict=True) if u],
        "val:seen": [p for p, u in zip(val, splits.val_unseen, strict=True) if not u],
        **{f"test:{n}": ex for n, ex in tests.items()},
    }
    for name, m in metrics.items():
        examples = parts[name]
        m["linked_share"] = float(np.mean([bool(p.linked) for p in examples])) if examples else 0.0
        gold = np.array([p.label for p in examples])
        m.update(calibration_report(predict_logits(model, resources, examples), gold, temperature))
    training = {
        "setup_s": round(setup_s, 2),
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "seconds_per_epoch": seconds,
        "temperature": temperature,
        "selection": plan.selection.on,
        "choices": plan.choices,
        "counts": splits.counts(),
        "self_training": self_training,
    }
    bundle = run_dir / "bundle"
    if distributed.is_main():
        bundle = save_bundle(bundle, model, resources, config, metrics, training)
        workspace.save_feature_cache()
    distributed.barrier()
    return TrainResult(
        run_dir, bundle, metrics, epochs, seconds, best_epoch, temperature, plan.choices
    )


def _unlabeled_texts(config: RunConfig) -> list[str]:
    """The texts of ``data.unlabeled`` when self-training is on (else none), checked."""
    if config.train.self_training_rounds <= 0:
        return []
    column = config.data.text_column
    texts = [r[column] for r in read_records(config.data.unlabeled, (column,))]
    check_texts(texts)
    return texts


def main(
    config_path: str | Path | None, overrides: list[str], progress: bool = True
) -> TrainResult:
    """`run` the config at ``config_path`` with ``key=value`` overrides; under torchrun the
    process group is left once training is done."""
    config = load_config(config_path, overrides)
    try:
        return run(config, progress=progress)
    finally:
        distributed.destroy()


def with_overrides(config: RunConfig, **sections: dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with some fields of some sections replaced."""
    return replace(
        config,
        **{name: replace(getattr(config, name), **values) for name, values in sections.items()},
    )
