"""``kgfuse tune CONFIG --trials N [--timeout MIN]``: choose the settings on validation, with Optuna.

    kgfuse tune configs/pokedex.yaml --trials 20          # -> OUTPUT/tune/best.yaml
    kgfuse train OUTPUT/tune/best.yaml                    # the command it prints

The first trials are the settings the config gives, then kgfuse's defaults (where they
differ): tuning never returns a config that scores below them on validation, and on a small
budget the sampler's draws have a baseline to beat. `SPACE` is widened to hold the config's own
values. The other trials draw from it with a TPE sampler (seeded by ``train.seed``, so a study is
repeatable; random for the first third of the trials). Each trial reports its validation score
after every epoch, and is pruned when that score falls below the median of earlier trials at the
same epoch. The score is what training selects on: val:unseen accuracy (fusion/setup.py); with
``--seeds K``, the mean over K seeds, each holding out its own entities where validation is
carved (a hundred-odd val:unseen texts rank settings a point or two apart by chance). The
objective never opens a test file: trials train on a copy of the config without ``data.tests``.

The study lives in ``OUTPUT/tune/study.db`` (SQLite): run the same command again after an
interruption and it goes on where it stopped, until N trials are finished in all; the trial that
was running resumes from its own checkpoint (each trial's run folder is named by its settings).
The best trial's config is written as YAML with its validation figures in comments.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from fusion.config import RunConfig, config_from_dict
from fusion.setup import Workspace, plan_run
from fusion.train import StaleRunError, run
from kg.files import make_folder, write_text
from kg.folder_lock import folder_lock

console = Console()

# What matters: learning rates, the counts' head, label-fact masking, mention masking, the
# linear-probe start of the text head, hidden size, dropout and epochs (None: the setting's
# `auto`). Hops are not drawn: every trial chooses them as training does, by the reference on
# validation (fusion/reference.py), which compares 1 to 3 hops in seconds where a trial takes
# minutes; a config that sets `subgraph.hops` keeps its value.
Space = dict[str, tuple[Any, ...]]
SPACE: Space = {
    "train.lr": ("log", 1e-3, 3e-2),
    "train.lora_lr": ("log", 2e-4, 5e-3),
    "model.counts_head": ("choice", "per_label", "concat"),
    "train.mask_label_facts": ("choice", None, 0.0, 0.5, 1.0),
    "train.mask_mentions": ("choice", 0.0, 0.25, 0.5),
    "train.probe_init": ("choice", None, True, False),
    "model.hidden": ("choice", 64, 128, 256),
    "model.dropout": ("float", 0.0, 0.3),
    "train.epochs": ("int", 2, 6),
}
# TPE samples at random until it has this many trials (Optuna's default is 10: with 10 trials
# or fewer, TPE would never model anything)
STARTUP_SHARE, MIN_STARTUP = 1 / 3, 3
STUDY_FILE = "study.db"
BEST_FILE = "best.yaml"


def settings_of(config: RunConfig, keys: Iterable[str] = SPACE) -> dict[str, Any]:
    """``config``'s value of each dotted key (None: auto)."""
    out = {}
    for key in keys:
        section, name = key.split(".")
        out[key] = getattr(getattr(config, section), name)
    return out


def space_for(config: RunConfig) -> Space:
    """`SPACE`, widened to hold the values of every baseline (`baselines`: ``config``'s own
    and kgfuse's defaults; a choice it lacks, a bound it passes), so that each can run as a
    trial."""
    space: Space = {}
    starts = baselines(config)
    for key in SPACE:
        kind, *args = SPACE[key]
        for own in (start[key] for start in starts):
            if kind == "choice":
                args = args if any(_same(own, a) for a in args) else [*args, own]
            else:
                args = [min(args[0], own), max(args[1], own)]
        space[key] = (kind, *args)
    return space


def default_settings(config: RunConfig) -> RunConfig:
    """``config`` with every searched setting at kgfuse's default."""
    data = config.to_dict()
    for key in SPACE:
        section, name = key.split(".")
        data[section].pop(name, None)
    return config_from_dict(data, "the default settings")


def baselines(config: RunConfig) -> list[dict[str, Any]]:
    """The trials every study starts with: the config's settings, then the defaults where they
    differ."""
    given, defaults = settings_of(config), settings_of(default_settings(config))
    same = all(_same(given[k], defaults[k]) for k in given)
    return [given] if same else [given, defaults]


def _same(a: Any, b: Any) -> bool:
    """Equal and of one kind: True is not 1, and 0.0 is not False (Optuna keeps them apart)."""
    return a == b and type(a) is type(b)


def study_name(space: Space, seeds: int = 1) -> str:
    """The study of a search space: another space (another config's values, or a newer kgfuse)
    starts its own study in the same file, where Optuna would refuse the old one's choices.
    Scores over several seeds are another objective, so another study."""
    key = json.dumps({k: list(v) for k, v in space.items()}, sort_keys=True).encode()
    name = "kgfuse-" + hashlib.sha256(key).hexdigest()[:12]
    return name if seeds == 1 else f"{name}-{seeds}-seeds"


def suggest(trial: Any, space: Space = SPACE) -> dict[str, Any]:
    """One value per ``space`` key from an Optuna trial."""
    params: dict[str, Any] = {}
    for key, (kind, *args) in space.items():
        if kind == "log":
            params[key] = trial.suggest_float(key, args[0], args[1], log=True)
        elif kind == "float":
            params[key] = trial.suggest_float(key, args[0], args[1])
        elif kind == "int":
            params[key] = trial.suggest_int(key, args[0], args[1])
        else:
            params[key] = trial.suggest_categorical(key, list(args))
    return params


def with_params(config: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``config`` with dotted ``params`` set."""
    data = config.to_dict()
    for key, value in params.items():
        section, name = key.split(".")
        data[section][name] = value
    return config_from_dict(data, "a tuning trial")


def trial_folder(root: Path, params: dict[str, Any]) -> Path:
    """A trial's run folder, named by its settings: a resumed trial finds its checkpoint."""
    key = json.dumps(params, sort_keys=True).encode()
    return root / "trials" / hashlib.sha256(key).hexdigest()[:12]


def without_tests(config: RunConfig) -> RunConfig:
    """The config a trial trains: no test file is named, so none can be read."""
    return replace(config, data=replace(config.data, tests={}))


def tune(
    config: RunConfig,
    trials: int,
    timeout_minutes: float | None = None,
    progress: bool = True,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    seeds: int = 1,
) -> dict[str, Any]:
    """Run (or resume) the study of ``config`` until ``trials`` trials are finished; write the
    best config to ``OUTPUT/tune/best.yaml`` and return a summary.

    ``seeds`` > 1: each trial trains ``train.seed``, ``train.seed + 1``, ... and scores the mean
    of their validation scores. Without a val file each seed carves its own validation (other
    held-out entities), so a trial is judged on more entities. With one, the seeds differ in
    initialisation and order only. The first seed's epochs feed the pruner."""
    import optuna

    if seeds < 1:
        raise ValueError(f"seeds must be 1 or more (got {seeds})")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(config.output) / "tune"
    make_folder(root)
    with folder_lock(root, *TUNE_IN_USE):  # one tuning per study: see TUNE_IN_USE
        return _run_study(config, root, trials, timeout_minutes, progress, on_trial, seeds)


# A second tuning of the same study would close the first one's running trial as interrupted
# (`_requeue_interrupted`) and train its settings in the same folder.
TUNE_IN_USE = (
    "another kgfuse tune",
    "wait for it to end (rerun this command then: it goes on from the finished trials), or "
    "give this one another output=FOLDER",
)


def _run_study(
    config: RunConfig,
    root: Path,
    trials: int,
    timeout_minutes: float | None,
    progress: bool,
    on_trial: Callable[[dict[str, Any]], None] | None,
    seeds: int,
) -> dict[str, Any]:
    """`tune`'s study, in ``root``, which this process holds."""
    import optuna

    base = without_tests(config)
    space = space_for(config)
    study = optuna.create_study(
        storage=f"sqlite:///{root / STUDY_FILE}",
        study_name=study_name(space, seeds),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            seed=config.train.seed,
            n_startup_trials=max(MIN_STARTUP, round(trials * STARTUP_SHARE)),
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        load_if_exists=True,
    )
    if not study.trials:
        for settings in baselines(config):
            study.enqueue_trial(settings)
    _requeue_interrupted(study)
    workspace = Workspace.open(base, root)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        folder = trial_folder(root, params)

        def report(epoch: int, record: dict[str, Any]) -> None:
            trial.report(record["score"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        settings = with_params(base, params)
        runs = []
        for k in range(seeds):
            seed = settings.train.seed + k
            out = folder if seeds == 1 else folder / f"seed-{seed}"
            cfg = replace(settings, output=str(out), train=replace(settings.train, seed=seed))
            runs.append(_train_trial(cfg, workspace, out, report if k == 0 else None))
        scores = [plan.selection.score(result.metrics)[0] for plan, result in runs]
        score = sum(scores) / len(scores)
        plan, result = runs[0]
        trial.set_user_attr("selection", plan.selection.on)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("folder", str(folder))
        if seeds > 1:
            trial.set_user_attr("seed_scores", scores)
        for name in ("val:unseen", "val:seen"):
            found = [r.metrics[name] for _, r in runs if name in r.metrics]
            if found:
                for key in ("accuracy", "macro_f1"):
                    value = sum(m[key] for m in found) / len(found)
                    trial.set_user_attr(f"{name}/{key}", value)
        if on_trial is not None:
            on_trial({"number": trial.number, "params": params, "score": score})
        return score

    remaining = max(0, trials - len(_ran(study)))
    if remaining:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout_minutes * 60 if timeout_minutes else None,
            show_progress_bar=progress,
        )
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise StaleRunError(f"no tuning trial finished in {root}; run again with more time")
    best = study.best_trial
    out = root / BEST_FILE
    write_best(config, best, len(_ran(study)), out)
    return {
        "best_trial": best.number,
        "score": best.value,
        "params": best.params,
        "attrs": best.user_attrs,
        "trials": len(study.trials),
        "complete": len(finished),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "config": str(out),
    }


def _train_trial(
    cfg: RunConfig,
    workspace: Workspace,
    folder: Path,
    report: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[Any, Any]:
    """(plan, result) of one trial's run in ``folder``; a checkpoint of other settings left
    there is cleared first, and the checkpoint is dropped once the run ends."""
    plan = plan_run(cfg, workspace)
    try:
        try:
            result = run(cfg, False, workspace=workspace, plan=plan, on_epoch_end=report)
        except StaleRunError:
            shutil.rmtree(folder)
            result = run(cfg, False, workspace=workspace, plan=plan, on_epoch_end=report)
    finally:
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    return plan, result


def _requeue_interrupted(study: Any) -> None:
    """A trial left running by an interrupted tuning is closed as failed and queued again with
    the same settings (its run folder, named by them, resumes from its checkpoint)."""
    import optuna

    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params)


def _ran(study: Any) -> list[Any]:
    """Trials that ran: complete or pruned; a failed one (a kill left it running) does not."""
    from optuna.trial import TrialState

    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def write_best(config: RunConfig, best: Any, total: int, path: Path) -> None:
    """The config of the best trial, as YAML with its validation figures in comments."""
    data = with_params(config, best.params).to_dict()
    for section in data.values():  # None means "auto" in a config file
        if isinstance(section, dict):
            for key, value in section.items():
                if value is None:
                    section[key] = "auto"
    data["output"] = str(Path(config.output) / "tuned")
    attrs = best.user_attrs
    figures = ", ".join(
        f"{name} {attrs[name + '/accuracy']:.3f} accuracy / {attrs[name + '/macro_f1']:.3f} macro-F1"
        for name in ("val:unseen", "val:seen")
        if name + "/accuracy" in attrs
    )
    lines = [
        f"# kgfuse train {path}",
        f"# Chosen by kgfuse tune on validation only: trial {best.number}, the best of {total} "
        f"trials (pruned ones included), scored {best.value:.3f} on "
        f"val:{attrs.get('selection', 'unseen')}{_over_seeds(attrs)} "
        f"(best epoch {attrs.get('best_epoch')}).",
        f"# Validation: {figures}." if figures else "# Validation figures: none recorded.",
        "# Tuned settings: "
        + ", ".join(f"{k}={_short(v)}" for k, v in sorted(best.params.items())),
        "",
    ]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    write_text(path, "\n".join(lines) + body)


def _over_seeds(attrs: dict[str, Any]) -> str:
    """`` (mean of 3 seeds: 0.812, 0.790, 0.805)`` for a trial scored over several seeds."""
    scores = attrs.get("seed_scores")
    if not scores:
        return ""
    return f" (mean of {len(scores)} seeds: " + ", ".join(f"{x:.3f}" for x in scores) + ")"


def _short(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, float) and value and not math.isclose(value, round(value, 3)):
        return f"{value:.3g}"
    return str(value)
