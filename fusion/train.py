"""Train a fused model from one YAML config: ``kgfuse train configs/NAME.yaml [key=value ...]``.

Read it top to bottom: set-up (seeds, data, KG, linker, node features), the model, the loop
(AdamW with separate learning rates for the encoder's adapter and the rest, warmup then linear
decay, gradient clipping, early stopping on val macro-F1, a checkpoint per epoch to resume
from), then evaluation of the best weights and the bundle.

Everything goes under ``config.output``: ``bundle/`` (what `predict`, `explain` and `export` load),
``checkpoint/`` (resume state), ``metrics.jsonl`` (one line per epoch), ``cache/`` (node
features), and ``tensorboard/`` when enabled.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import kg
from fusion.checkpoint import (
    checkpoint_state,
    load_checkpoint,
    load_trainable_state,
    save_checkpoint,
    trainable_state,
)
from fusion.config import ConfigError, RunConfig, load_config
from fusion.data import Splits, load_splits
from fusion.encoder import TextEncoder
from fusion.metrics import classification_metrics
from fusion.model import FusionClassifier
from fusion.resources import Prepared, Resources, read_label_map


@dataclass
class TrainResult:
    run_dir: Path
    bundle: Path
    metrics: dict[str, dict[str, Any]]  # split name -> metrics
    epochs_run: int
    seconds_per_epoch: float
    best_epoch: int


class StaleRunError(ConfigError):
    """The output folder holds a checkpoint of a run with other settings or data."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----- set-up -----
def load_data(config: RunConfig) -> Splits:
    d = config.data
    tests: dict[str, str | Path] = dict(d.tests)
    return load_splits(
        train=d.train or None, val=d.val or None, tests=tests, path=d.path or None,
        split_column=d.split_column or None, text_column=d.text_column, label_column=d.label_column,
        val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=config.train.seed,
    )  # fmt: skip


def build_resources(config: RunConfig, labels: list[str], run_dir: Path) -> Resources:
    graph = kg.open_or_load(config.kg.files)
    label_nodes = read_label_map(config.kg.label_map, graph, labels) if config.kg.label_map else []
    linker = {
        "threshold": config.linker.threshold,
        "head_match": config.linker.head_match,
        "types": list(config.linker.types),
    }
    return Resources(
        graph,
        labels,
        label_nodes,
        config.encoder,
        config.subgraph,
        linker,
        feature_cache=run_dir / "cache",
    )


def build_model(config: RunConfig, resources: Resources) -> FusionClassifier:
    if config.model.mode == "counter" and resources.counter is None:
        raise ConfigError("model.mode=counter counts paths to label nodes: set kg.label_map")
    encoder = TextEncoder(config.encoder) if config.model.mode != "graph" else None
    return FusionClassifier(
        config.model, encoder, resources.features, 2 * resources.graph.num_relations,
        len(resources.labels), resources.tokenizer.hidden_size, uses_label_nodes=bool(resources.label_nodes),
        counter_dim=resources.counter.dims if resources.counter is not None else 0,
    )  # fmt: skip


# ----- batches -----
def batches(
    examples: Sequence[Prepared], batch_size: int, order: Sequence[int] | None = None
) -> Iterator[list[Prepared]]:
    order = list(order) if order is not None else list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        yield [examples[i] for i in order[start : start + batch_size]]


def forward(
    model: FusionClassifier, resources: Resources, batch: list[Prepared]
) -> dict[str, torch.Tensor]:
    tokens, graph, counts = resources.inputs(
        model.config.mode, batch, model.text_encoder is not None
    )
    return model.forward_parts(tokens, graph, counts=counts)


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


# ----- optimisation -----
def make_optimizer(model: FusionClassifier, config: RunConfig) -> torch.optim.Optimizer:
    encoder_ids = (
        {id(p) for p in model.text_encoder.parameters()}
        if model.text_encoder is not None
        else set()
    )
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in encoder_ids], "lr": config.train.lora_lr},
        {"params": [p for p in params if id(p) not in encoder_ids], "lr": config.train.lr},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], weight_decay=config.train.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def class_weights(examples: Sequence[Prepared], num_labels: int) -> torch.Tensor:
    counts = np.bincount([p.label for p in examples], minlength=num_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / num_labels
    return torch.as_tensor(weights, dtype=torch.float32)


class Progress:
    """A rich progress bar on terminals; silent otherwise (CI logs, tests)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("training", total=total)

    def update(self, description: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def fit(
    model: FusionClassifier,
    resources: Resources,
    train: Sequence[Prepared],
    val: Sequence[Prepared],
    config: RunConfig,
    run_dir: Path,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    data_key: str = "",
) -> tuple[int, int, float]:
    """Train with early stopping; leaves the best weights in ``model``.
    Returns (epochs run, best epoch, mean seconds per epoch).

    A checkpoint from an earlier, interrupted run with the same settings is resumed; one
    written by other settings is refused (``train.epochs`` and ``train.patience`` may differ).
    ``on_epoch_end(epoch)`` runs after each epoch's checkpoint is written."""
    settings = config.train
    optimizer = make_optimizer(model, config)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    scheduler = make_scheduler(optimizer, steps_per_epoch * settings.epochs, settings.warmup)
    weights = class_weights(train, len(resources.labels)) if settings.class_weights else None
    checkpoint = run_dir / "checkpoint"
    metrics_file = run_dir / "metrics.jsonl"
    fingerprint = settings_fingerprint(config, data_key)
    state: dict[str, Any] = {
        "epoch": 0,
        "best_f1": -1.0,
        "best_epoch": 0,
        "stale": 0,
        "epoch_seconds": [],
        "settings": fingerprint,
    }
    best = trainable_state(model)
    previous = checkpoint_state(checkpoint)
    if previous is not None:
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
    writer = _tensorboard(run_dir) if settings.tensorboard else None
    bar = Progress(steps_per_epoch * (settings.epochs - state["epoch"]), progress)
    try:
        while state["epoch"] < settings.epochs and state["stale"] < settings.patience:
            epoch = state["epoch"] + 1
            order = torch.randperm(
                len(train), generator=torch.Generator().manual_seed(settings.seed * 1000 + epoch)
            )
            model.train()
            started, losses = time.perf_counter(), []
            for batch in batches(train, settings.batch_size, order.tolist()):
                logits = forward(model, resources, batch)["logits"]
                target = torch.tensor([p.label for p in batch])
                loss = nn.functional.cross_entropy(logits, target, weight=weights)
                optimizer.zero_grad()
                loss.backward()
                if settings.clip > 0:
                    nn.utils.clip_grad_norm_(
                        [p for p in model.parameters() if p.requires_grad], settings.clip
                    )
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.update(
                    f"epoch {epoch}/{settings.epochs} loss {np.mean(losses[-20:]):.3f} best val F1 {max(state['best_f1'], 0):.3f}"
                )
            seconds = time.perf_counter() - started
            scores = evaluate(model, resources, val)
            # a tie on val macro-F1 (common on small val sets) goes to the lower val loss
            loss = scores.get("loss", 0.0)
            improved = scores["macro_f1"] > state["best_f1"] or (
                scores["macro_f1"] == state["best_f1"]
                and loss < state.get("best_loss", float("inf"))
            )
            if improved:
                best = trainable_state(model)
                state.update(best_f1=scores["macro_f1"], best_loss=loss, best_epoch=epoch, stale=0)
            else:
                state["stale"] += 1
            state["epoch"] = epoch
            state["epoch_seconds"].append(seconds)
            record = {
                "epoch": epoch, "train_loss": float(np.mean(losses)), "val_accuracy": scores["accuracy"],
                "val_macro_f1": scores["macro_f1"], "val_loss": scores.get("loss"), "best": improved, "seconds": round(seconds, 3),
                "lr": [g["lr"] for g in optimizer.param_groups],
            }  # fmt: skip
            with metrics_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            if writer is not None:
                for key in ("train_loss", "val_accuracy", "val_macro_f1"):
                    writer.add_scalar(key, record[key], epoch)
            save_checkpoint(checkpoint, model, best, optimizer, state)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    load_trainable_state(model, best)
    return (
        state["epoch"],
        state["best_epoch"],
        float(np.mean(state["epoch_seconds"])) if state["epoch_seconds"] else 0.0,
    )


def settings_fingerprint(config: RunConfig, data_key: str = "") -> str:
    """What a resumed run must share with the interrupted one: the config (but epochs and
    patience, which may grow), and the data and KG (``data_key``)."""
    settings = config.to_dict()
    settings["train"] = {
        k: v for k, v in settings["train"].items() if k not in ("epochs", "patience")
    }
    settings["data_key"] = data_key
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
    resources: Resources | None = None,
    splits: Splits | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    use_kg: bool = True,
) -> TrainResult:
    """Train, evaluate and write the bundle for ``config``. ``resources`` and ``splits`` may be
    passed in to share linking and node features between runs (`kgfuse compare`);
    ``use_kg=False`` is the no-KG control (nothing linked, no edges)."""
    from fusion.bundle import save_bundle

    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    splits = splits or load_data(config)
    resources = resources or build_resources(config, splits.labels, run_dir)
    index = {label: i for i, label in enumerate(splits.labels)}
    mask = config.train.mask_label_facts

    def prepare(examples: list[Any], masked: float = 0.0) -> list[Prepared]:
        texts, labels = [e.text for e in examples], [index[e.label] for e in examples]
        return resources.prepare(texts, labels, masked, use_kg, mask_seed=config.train.seed)

    train = prepare(splits.train, masked=mask)
    val = prepare(splits.val)
    tests = {name: prepare(examples) for name, examples in splits.tests.items()}

    seed_everything(config.train.seed)  # the model's initialisation does not depend on linking
    model = build_model(config, resources)
    data_key = data_fingerprint(resources, train, val)
    epochs, best_epoch, seconds = fit(
        model, resources, train, val, config, run_dir, progress, on_epoch_end, data_key
    )

    metrics = {"val": evaluate(model, resources, val)} | {
        f"test:{n}": evaluate(model, resources, ex) for n, ex in tests.items()
    }
    for name, m in metrics.items():
        m["linked_share"] = float(
            np.mean([bool(p.linked) for p in (val if name == "val" else tests[name[5:]])])
        )
    bundle = save_bundle(
        run_dir / "bundle",
        model,
        resources,
        config,
        metrics,
        {"epochs_run": epochs, "best_epoch": best_epoch, "seconds_per_epoch": seconds},
    )
    return TrainResult(run_dir, bundle, metrics, epochs, seconds, best_epoch)


def main(
    config_path: str | Path | None, overrides: list[str], progress: bool = True
) -> TrainResult:
    config = load_config(config_path, overrides)
    return run(config, progress=progress)


def with_overrides(config: RunConfig, **sections: dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with some fields of some sections replaced."""
    return replace(
        config,
        **{name: replace(getattr(config, name), **values) for name, values in sections.items()},
    )
