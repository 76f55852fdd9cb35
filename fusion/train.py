"""Train a fused model from one YAML config: ``kgfuse train configs/NAME.yaml [key=value ...]``.

Read `run` top to bottom: set-up (seeds, data, KG, linker, node features), the model, the loop
(`fusion.loop.fit`: AdamW, warmup then linear decay, early stopping on validation, a checkpoint
per epoch to resume from), calibration and self-training, then evaluation of the best weights
(`fusion.report`) and the bundle.

Everything goes under ``config.output``: ``bundle/`` (what `predict`, `explain` and `export` load),
``checkpoint/`` (resume state), ``metrics.jsonl`` (one line per epoch), ``cache/`` (node
features), and the tracker's files when ``train.tracker`` names one (``tensorboard/``,
``mlflow/`` or ``wandb/``, fusion/trackers.py).

Under ``torchrun --nproc_per_node=N`` the same script trains with DDP (fusion/distributed.py):
each rank steps through its shard of every epoch's order, ``train.batch_size`` texts per rank
and step (N times that per optimizer step in all); validation scores are summed over the ranks
so every rank stops at the same epoch; rank 0 alone writes under ``config.output``.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion import distributed
from fusion.augment import swap_mentions
from fusion.bundle import build_classifier, save_bundle
from fusion.calibration import fit_temperature
from fusion.config import ConfigError, RunConfig, load_config
from fusion.encoder import TextEncoder
from fusion.evaluate import predict_logits
from fusion.loop import StaleRunError, fit, settings_fingerprint
from fusion.model import FusionClassifier
from fusion.probe import fit_text_probe, load_probe
from fusion.report import final_metrics
from fusion.resources import Prepared, Resources
from fusion.self_training import self_train, usable
from fusion.setup import RunPlan, Workspace, plan_run
from fusion.trackers import Guarded, final_metrics_of, open_tracker, tracking
from kg.files import check_folder_writable, make_folder
from kg.folder_lock import folder_lock, refuse_locked_folder
from nlp.texts import check_texts, read_records

# importable from here, where callers (compare, tune) have long found them
__all__ = [
    "RunTexts",
    "StaleRunError",
    "TrainResult",
    "build_model",
    "data_fingerprint",
    "fit",
    "main",
    "run",
    "seed_everything",
    "settings_fingerprint",
    "with_overrides",
]


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


PROBE_TEXTS = 20_000  # the linear probe fits on at most this many training texts


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----- set-up -----
def build_model(config: RunConfig, resources: Resources) -> FusionClassifier:
    if config.model.mode == "counter" and resources.counter is None:
        raise ConfigError("model.mode=counter counts paths to label nodes: set kg.label_map")
    encoder = TextEncoder(config.encoder) if config.model.mode != "graph" else None
    return build_classifier(config, resources, encoder)


def data_fingerprint(resources: Resources, *parts: Sequence[Prepared]) -> str:
    """Texts, labels, links and the KG of a run: a checkpoint is reused only when all match."""
    h = hashlib.sha256(resources.graph.fingerprint.encode())
    for part in parts:
        for p in part:
            h.update(f"{p.label}\t{p.linked}\t{p.text}\n".encode())
    return h.hexdigest()[:16]


# ----- the script -----
@dataclass
class RunTexts:
    """A run's texts, prepared (linked, subgraphs drawn): what training and evaluation read."""

    train: list[Prepared]  # with the mention-swapped copies when on
    val: list[Prepared]
    unlabeled: list[Prepared]  # for self-training; texts that would leak validation left out
    tests: dict[str, list[Prepared]]  # test set name -> its texts


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
    if not isinstance(config, RunConfig):
        raise TypeError(
            f"run takes a RunConfig, not {type(config).__name__}: use fusion.train.main(path, "
            "overrides) for a YAML file, or fusion.config.load_config / config_from_dict first"
        )
    started = time.perf_counter()
    distributed.init_from_env()  # the model trains on the CPU: gloo
    run_dir = Path(config.output)
    check_folder_writable(run_dir)  # before the KG, the links and the encoder: not after
    if distributed.is_main():  # the rank that writes; the others would race it for the lock
        refuse_locked_folder(run_dir, *RUN_IN_USE)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    unlabeled_texts = _unlabeled_texts(config)  # read and checked before anything is written
    tracker = open_tracker(config.train, run_dir)  # a missing package is named here, too
    with distributed.main_first():
        workspace = workspace or Workspace.open(config, run_dir)
        plan = plan or plan_run(config, workspace)
    config = _resolved(config, plan)
    resources = plan.resources.walking(config.model.reads_walks)
    texts = _prepare_texts(config, plan, resources, unlabeled_texts, use_kg)

    # started first: a tracker that cannot start (a server that does not answer) leaves no folder
    removable = not run_dir.exists() and config.train.tracker == "none"
    with (
        tracking(tracker, config.train.tracker, config.to_dict()) as tracked,
        _run_folder(run_dir, removable),
    ):
        return _train(
            config, plan, resources, texts, workspace, tracked, started, progress, on_epoch_end
        )


# who holds a run folder, and what to do: `kg.folder_lock.folder_lock`
RUN_IN_USE = (
    "another kgfuse run writing it",
    "wait for that run to end, or give this one another output=FOLDER",
)


@contextmanager
def _run_folder(run_dir: Path, removable: bool) -> Iterator[None]:
    """Make ``run_dir`` (the inputs are all read and checked by now) and hold its lock while
    the run writes into it (rank 0: the one that writes). A run that stops before its first
    checkpoint (Ctrl-C or a failure) removes the folder when ``removable`` (it made the folder
    and no tracker keeps a record of the run in it): a rerun could not resume from anything
    there."""
    if not distributed.is_main():
        distributed.barrier()
        yield
        return
    make_folder(run_dir)
    with folder_lock(run_dir, *RUN_IN_USE):
        distributed.barrier()
        try:
            yield
        except BaseException:
            if removable and not (run_dir / "checkpoint" / "state.json").is_file():
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _train(
    config: RunConfig,
    plan: RunPlan,
    resources: Resources,
    texts: RunTexts,
    workspace: Workspace,
    tracker: Guarded,
    started: float,
    progress: bool,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
) -> TrainResult:
    """`run` from the model on: train, calibrate, evaluate, write the bundle; ``tracker``
    gets the epochs, the final metrics and the bundle."""
    run_dir = Path(config.output)
    seed_everything(config.train.seed)  # the model's initialisation does not depend on linking
    model = build_model(config, resources)
    probe = _probe_text_head(model, config, plan, workspace, texts)
    data_key = data_fingerprint(resources, texts.train, texts.val)
    setup_s = time.perf_counter() - started  # KG, linker, links, subgraphs, automatic choices
    val_unseen = plan.splits.val_unseen
    epochs, best_epoch, seconds = fit(
        model,
        resources,
        texts.train,
        texts.val,
        config,
        run_dir,
        progress,
        on_epoch_end,
        data_key,
        val_unseen,
        plan.selection,
        tracker,
    )
    temperature, self_training = _calibrate_and_self_train(
        model, resources, config, plan, texts, run_dir, progress
    )
    metrics = final_metrics(model, resources, texts.val, val_unseen, texts.tests, temperature)
    training = {
        "setup_s": round(setup_s, 2),
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "seconds_per_epoch": seconds,
        "temperature": temperature,
        "selection": plan.selection.on,
        "choices": plan.choices,
        "counts": plan.splits.counts(),
        "self_training": self_training,
        "probe": probe,
    }
    bundle = _save_bundle(run_dir, model, resources, config, metrics, training, workspace)
    tracker.log_metrics(epochs, final_metrics_of(metrics))
    tracker.log_artifact(bundle)
    return TrainResult(
        run_dir, bundle, metrics, epochs, seconds, best_epoch, temperature, plan.choices
    )


def _probe_text_head(
    model: FusionClassifier,
    config: RunConfig,
    plan: RunPlan,
    workspace: Workspace,
    texts: RunTexts,
) -> dict[str, Any] | None:
    """With ``train.probe_init`` (auto: always for a text-only model, else as the plan chose),
    set the text head to a logistic regression on what it reads before training
    (`fusion.probe`): the frozen encoder's vectors, and with a concat counts head the label
    counts too, each text's as training and validation prepared them (label facts masked
    alike). Its C is chosen on the texts that select checkpoints.
    Returns what was fitted, for the bundle's training record."""
    setting = config.train.probe_init  # None: auto, resolved in the plan's config
    auto = config.model.mode == "text" or bool(plan.config.train.probe_init)
    wanted = setting if setting is not None else auto
    if not wanted or model.text_encoder is None:
        return None
    splits = plan.splits
    index = {label: i for i, label in enumerate(splits.labels)}
    flags = plan.selection.flags(splits.val_unseen)
    chosen = [i for i, f in enumerate(flags) if f]
    if len({e.label for e in splits.train}) < 2 or not chosen:  # nothing for a regression
        return None
    rows = list(range(len(splits.train)))  # texts.train[i] is splits.train[i] (swaps follow)
    if len(rows) > PROBE_TEXTS:  # a seeded sample bounds the frozen pass and the fit
        rng = np.random.default_rng(config.train.seed)
        rows = sorted(rng.choice(len(rows), PROBE_TEXTS, replace=False).tolist())
    reads_counts = model.counts_in_text_head

    def inputs(examples: list[Any], prepared: list[Prepared], which: list[int]) -> np.ndarray:
        vectors = workspace.pooled([examples[i].text for i in which])
        if not reads_counts:
            return vectors
        counts = np.stack([np.asarray(prepared[i].counts, dtype=np.float32) for i in which])
        return np.hstack([vectors, counts])

    probe = fit_text_probe(
        inputs(splits.train, texts.train, rows),
        np.array([index[splits.train[i].label] for i in rows]),
        inputs(splits.val, texts.val, chosen),
        np.array([index[splits.val[i].label] for i in chosen]),
        len(splits.labels),
    )
    head = model.text_head[-1]
    assert isinstance(head, torch.nn.Linear)  # Dropout, then the Linear the probe sets
    load_probe(head, probe)
    return {"C": probe.C, "val_accuracy": round(probe.val_accuracy, 4), "counts": reads_counts}


def _resolved(config: RunConfig, plan: RunPlan) -> RunConfig:
    """``config`` with the settings ``plan`` chose for its ``auto`` values."""
    return replace(
        config,
        subgraph=plan.config.subgraph,
        train=replace(config.train, mask_label_facts=plan.config.train.mask_label_facts),
    )


def _prepare_texts(
    config: RunConfig,
    plan: RunPlan,
    resources: Resources,
    unlabeled_texts: list[str],
    use_kg: bool,
) -> RunTexts:
    """Link and prepare every split. Training and validation miss the label facts of
    validation's held-out entities (as a new entity's are missing); tests see the KG as the
    bundle will. Without ``use_kg`` nothing is linked."""
    seed, splits = config.train.seed, plan.splits
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
            [e.text for e in examples], labels, masked, use_kg, seed, spans, hidden
        )

    train = prepare(splits.train, "train", plan.train_masked, plan.hidden)
    if use_kg and config.train.swap_mentions > 0:
        train = train + swap_mentions(
            resources, train, config.train.swap_mentions, seed, plan.hidden
        )
    val = prepare(splits.val, "val", plan.val_masked, plan.hidden)
    unlabeled: list[Prepared] = []
    if unlabeled_texts:
        masked = config.train.mask_label_facts or 0.0
        unlabeled = usable(
            resources.prepare(unlabeled_texts, None, masked, use_kg, seed, None, plan.hidden),
            train,
            val,
        )
    tests = {name: prepare(ex, f"test:{name}") for name, ex in splits.tests.items()}
    return RunTexts(train, val, unlabeled, tests)


def _calibrate_and_self_train(
    model: FusionClassifier,
    resources: Resources,
    config: RunConfig,
    plan: RunPlan,
    texts: RunTexts,
    run_dir: Path,
    progress: bool,
) -> tuple[float, list[dict[str, Any]]]:
    """(temperature, self-training rounds): the temperature is fitted on what validation
    selects on, never on a test text; with unlabelled texts, self-training then trains on
    from the fitted model (each round under ``run_dir/self-training-N``) and refits it."""
    val, val_unseen, selection = texts.val, plan.splits.val_unseen, plan.selection
    chosen = [p for p, f in zip(val, selection.flags(val_unseen), strict=True) if f]

    def calibrate() -> float:
        return fit_temperature(
            predict_logits(model, resources, chosen), np.array([p.label for p in chosen])
        )

    temperature = calibrate()
    if not texts.unlabeled:
        return temperature, []

    def train_more(pseudo: list[Prepared], round_: int) -> None:
        more, folder = texts.train + pseudo, run_dir / f"self-training-{round_}"
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
            val_unseen,
            selection,
        )

    return self_train(
        model,
        resources,
        val,
        val_unseen,
        selection,
        texts.unlabeled,
        config.train.self_training_rounds,
        config.train.self_training_threshold,
        temperature,
        train_more,
        calibrate,
    )


def _save_bundle(
    run_dir: Path,
    model: FusionClassifier,
    resources: Resources,
    config: RunConfig,
    metrics: dict[str, dict[str, Any]],
    training: dict[str, Any],
    workspace: Workspace,
) -> Path:
    """Write ``run_dir/bundle`` and the node-feature cache (rank 0); every rank returns once
    the bundle is whole."""
    bundle = run_dir / "bundle"
    if distributed.is_main():
        bundle = save_bundle(bundle, model, resources, config, metrics, training)
        workspace.save_feature_cache()
    distributed.barrier()
    return bundle


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
