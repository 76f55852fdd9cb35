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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import kg
from fusion import distributed
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
from fusion.optimization import Progress, class_weights, make_optimizer, make_scheduler
from fusion.resources import Prepared, Resources
from kg.store_graph import StoreGraph
from nlp.texts import read_label_map


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


def open_graph(config: RunConfig) -> kg.KnowledgeGraph | StoreGraph:
    """The run's KG: compiled from files, or a view of a triple store read on demand."""
    if config.kg.source:
        return StoreGraph.connect(config.kg.source)
    return kg.open_or_load(config.kg.files)


def build_resources(config: RunConfig, labels: list[str], run_dir: Path) -> Resources:
    graph = open_graph(config)
    label_nodes = read_label_map(config.kg.label_map, graph, labels) if config.kg.label_map else []
    linker = {
        "threshold": config.linker.threshold,
        "head_match": config.linker.head_match,
        "types": list(config.linker.types),
    }
    if config.linker.aliases:
        linker["aliases"] = config.linker.aliases
    return Resources(
        graph,
        labels,
        label_nodes,
        config.encoder,
        config.subgraph,
        linker,
        feature_cache=None if isinstance(graph, StoreGraph) else run_dir / "cache",
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
    model: FusionClassifier,
    resources: Resources,
    batch: list[Prepared],
    parallel: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """``model.forward_parts`` on ``batch``; through ``parallel`` (the DDP wrapper of that
    method, `distributed.data_parallel`) when given, so that gradients are averaged."""
    tokens, graph, counts = resources.inputs(model, batch)
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
    ``on_epoch_end(epoch)`` runs after each epoch's checkpoint is written.

    Under torchrun every rank calls this with the same data: each steps through its shard of
    the epoch's order (``train.batch_size`` texts per rank and step), rank 0 writes the
    checkpoint and metrics, and every rank resumes from the same checkpoint."""
    settings = config.train
    optimizer = make_optimizer(model, config)
    # the same number of steps on every rank: shards are padded to the same length
    steps_per_epoch = math.ceil(len(distributed.shard(range(len(train)))) / settings.batch_size)
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
    if not distributed.agree(previous["epoch"] if previous is not None else -1):
        raise distributed.DistributedError(
            f"the ranks see different checkpoints in {checkpoint}: put `output` on a "
            "filesystem that every node shares"
        )
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
    parallel = distributed.data_parallel(model, "forward_parts", _has_unused_parameters(model))
    main = distributed.is_main()
    writer = _tensorboard(run_dir) if settings.tensorboard and main else None
    bar = Progress(steps_per_epoch * (settings.epochs - state["epoch"]), progress and main)
    try:
        while state["epoch"] < settings.epochs and state["stale"] < settings.patience:
            epoch = state["epoch"] + 1
            order = torch.randperm(
                len(train), generator=torch.Generator().manual_seed(settings.seed * 1000 + epoch)
            )
            model.train()
            started, losses = time.perf_counter(), []
            for batch in batches(train, settings.batch_size, distributed.shard(order.tolist())):
                logits = forward(model, resources, batch, parallel)["logits"]
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
            seconds = distributed.all_reduce_mean(time.perf_counter() - started)
            scores = evaluate_shared(model, resources, val)
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
                "epoch": epoch, "train_loss": distributed.all_reduce_mean(float(np.mean(losses))),
                "val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"], "val_loss": scores.get("loss"),
                "best": improved, "seconds": round(seconds, 3), "lr": [g["lr"] for g in optimizer.param_groups],
            }  # fmt: skip
            if main:
                with metrics_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for key in ("train_loss", "val_accuracy", "val_macro_f1"):
                        writer.add_scalar(key, record[key], epoch)
                save_checkpoint(checkpoint, model, best, optimizer, state)
            distributed.barrier()  # no rank goes on (or stops) before the checkpoint is whole
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
    resources: Resources | None = None,
    splits: Splits | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    use_kg: bool = True,
) -> TrainResult:
    """Train, evaluate and write the bundle for ``config``. ``resources`` and ``splits`` may be
    passed in to share linking and node features between runs (`kgfuse compare`);
    ``use_kg=False`` is the no-KG control (nothing linked, no edges).

    Under torchrun (``WORLD_SIZE`` > 1) every rank runs this and returns the same metrics;
    rank 0 alone writes the node-feature cache (the others then read it), the checkpoints,
    ``metrics.jsonl`` and the bundle, which exists once this returns on any rank."""
    from fusion.bundle import save_bundle

    distributed.init_from_env()  # the model trains on the CPU: gloo
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    splits = splits or load_data(config)
    with distributed.main_first():
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

    metrics = {"val": evaluate_shared(model, resources, val)} | {
        f"test:{n}": evaluate_shared(model, resources, ex) for n, ex in tests.items()
    }
    for name, m in metrics.items():
        m["linked_share"] = float(
            np.mean([bool(p.linked) for p in (val if name == "val" else tests[name[5:]])])
        )
    bundle = run_dir / "bundle"
    if distributed.is_main():
        bundle = save_bundle(
            bundle,
            model,
            resources,
            config,
            metrics,
            {"epochs_run": epochs, "best_epoch": best_epoch, "seconds_per_epoch": seconds},
        )
    distributed.barrier()
    return TrainResult(run_dir, bundle, metrics, epochs, seconds, best_epoch)


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
