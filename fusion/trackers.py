"""Experiment trackers: ``train.tracker`` sends a run's config, its metrics per epoch, its final
metrics and its bundle to TensorBoard, MLflow or Weights & Biases, each writing local files under
the run folder, with no server, login or network.

One small interface, `Tracker` (``start``, ``log_metrics``, ``log_artifact``, ``finish``), and
one class per backend. A backend's package is imported only when chosen (`open_tracker`); a
missing one is named with its pip command before anything is written. `tracking` starts the
tracker on the main rank alone (fusion/distributed.py) and finishes it with the run's status.
Once started, a tracker that fails is a warning, never a lost run: `Guarded` logs the failure,
stops calling it, and training goes on (metrics.jsonl and the bundle do not depend on it).

    kgfuse train configs/tiny.yaml train.tracker=mlflow
    mlflow ui --backend-store-uri sqlite:///runs/tiny/mlflow/mlflow.db
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, get_args

from fusion import distributed
from fusion.settings import TrackerName, TrainSettings
from kg.errors import KGFuseError

log = logging.getLogger(__name__)

TRACKERS: tuple[str, ...] = get_args(TrackerName)  # what train.tracker may name
# what each backend needs, as pip names it (all three come with kgfuse[tracking])
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}
MLFLOW_PARAM_LENGTH = 6000  # MLflow refuses a longer parameter value


class TrackerError(KGFuseError):
    """A tracker's package is missing, or the tracker could not start (before training)."""


class Tracker(Protocol):
    """What training sends a tracker; ``step`` is the epoch."""

    def start(self, config: dict[str, Any]) -> None: ...

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_artifact(self, folder: Path) -> None: ...

    def finish(self, status: str) -> None:
        """``status``: "finished", "failed" or "killed" (interrupted)."""


class NoTracker:
    """``train.tracker=none``, and every rank but the main one: nothing is sent."""

    def start(self, config: dict[str, Any]) -> None:
        pass

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_artifact(self, folder: Path) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


class TensorBoardTracker:
    """Event files in ``OUTPUT/tensorboard``: the config as text, a scalar per metric, and the
    bundle's path as text (TensorBoard keeps no files)."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = run_dir / "tensorboard"
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def start(self, config: dict[str, Any]) -> None:
        self.writer = self._writer_class(str(self.folder))
        # markdown: indented lines are a code block
        text = "\n".join("    " + line for line in json.dumps(config, indent=2).splitlines())
        self.writer.add_text("config", text, 0)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_artifact(self, folder: Path) -> None:
        self.writer.add_text("bundle", str(folder.resolve()), 0)

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status, 0)
        self.writer.close()


class MlflowTracker:
    """An MLflow run: the config as parameters (``train.lr``, ...) and as ``config.json``,
    metrics by epoch, the bundle as the artifact folder ``bundle``.

    By default the store is a SQLite file, ``OUTPUT/mlflow/mlflow.db``, with artifacts in
    ``OUTPUT/mlflow/artifacts``; ``uri`` (``train.tracker_uri``) points at a tracking server or
    another store instead. MLflow's usage telemetry is off, and a request to a server is retried
    twice, unless the environment says otherwise (``MLFLOW_DISABLE_TELEMETRY``,
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``).
    """

    def __init__(self, run_dir: Path, experiment: str, uri: str = ""):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no call home
        # a server that does not answer: an error within seconds at start, and a warning
        # rather than minutes of training held up later (MLflow retries 7 times by default)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        from mlflow.tracking import MlflowClient

        self.folder = run_dir / "mlflow"
        self.uri = uri or f"sqlite:///{(self.folder / 'mlflow.db').resolve()}"
        self.artifacts = "" if uri else (self.folder / "artifacts").resolve().as_uri()
        self.experiment, self.name = experiment, run_dir.resolve().name
        self._client_class = MlflowClient
        self.client: Any = None
        self.run_id = ""

    def start(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if self.artifacts:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.client = self._client_class(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(
                self.experiment, artifact_location=self.artifacts or None
            )
        )
        self.run_id = self.client.create_run(experiment_id, run_name=self.name).info.run_id
        params = [
            Param(key, str(value)[:MLFLOW_PARAM_LENGTH]) for key, value in flatten(config).items()
        ]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_dict(self.run_id, config, "config.json")

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = _millis()
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, folder: Path) -> None:
        self.client.log_artifacts(self.run_id, str(folder), folder.name)

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status.upper())


class WandbTracker:
    """A Weights & Biases run in offline mode: ``OUTPUT/wandb/offline-run-*``, the config as
    the run's config, metrics by epoch (``step`` = epoch), the bundle as a ``model`` artifact
    that references the files in place. No login and no network; ``wandb sync`` uploads it
    later. System metrics and git and code capture are off (the run folder holds the rest)."""

    def __init__(self, run_dir: Path, project: str):
        import wandb

        self.wandb = wandb
        self.run_dir, self.project = run_dir, project
        self.run: Any = None

    def start(self, config: dict[str, Any]) -> None:
        # offline for the process too: W&B's own usage analytics read the process's mode
        self.wandb.setup(self.wandb.Settings(mode="offline"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        settings = self.wandb.Settings(
            silent=True,
            console="off",
            disable_git=True,
            save_code=False,
            x_disable_stats=True,  # the stats sampler probes cloud metadata addresses
        )
        self.run = self.wandb.init(
            project=self.project,
            name=self.run_dir.resolve().name,
            dir=str(self.run_dir),
            mode="offline",
            config=config,
            settings=settings,
            reinit="create_new",  # compare and tune train several runs in one process
        )

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def log_artifact(self, folder: Path) -> None:
        artifact = self.wandb.Artifact(folder.name, type="model")
        artifact.add_dir(str(folder), policy="immutable")  # no copy of the bundle
        self.run.log_artifact(artifact)

    def finish(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)
        if self.wandb.run is None:  # no other run of this process uses W&B's service:
            self.wandb.teardown()  # stopping it writes the run file whole before we return


def open_tracker(settings: TrainSettings, run_dir: Path) -> Tracker:
    """The tracker ``settings.tracker`` names, its package imported but nothing written yet.

    Raises:
        TrackerError: the backend's package is not installed (the message gives the pip
            command).
    """
    name = settings.tracker
    try:
        if name == "tensorboard":
            return TensorBoardTracker(run_dir)
        if name == "mlflow":
            return MlflowTracker(run_dir, settings.tracker_project, settings.tracker_uri)
        if name == "wandb":
            return WandbTracker(run_dir, settings.tracker_project)
    except ImportError as e:
        raise TrackerError(
            f"train.tracker={name} needs the {PACKAGES[name]} package ({e.msg}): "
            f"pip install '{PACKAGES[name]}' (or pip install 'kgfuse[tracking]' for every "
            "tracker), or set train.tracker=none"
        ) from None
    return NoTracker()


class Guarded:
    """A started tracker whose failures are warnings: the first one is logged and the tracker
    is not called again, so a full disk or a lost server never stops training."""

    def __init__(self, tracker: Tracker, name: str):
        self.tracker, self.name, self.broken = tracker, name, False

    def _call(self, method: str, *args: Any) -> None:
        if self.broken:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as e:  # any backend error: the run matters more than its tracking
            self.broken = True
            log.warning(
                "train.tracker=%s failed in %s (%s: %s); training goes on without it, "
                "metrics.jsonl and the bundle are complete",
                self.name,
                method,
                type(e).__name__,
                e,
            )

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._call("log_metrics", step, metrics)

    def log_artifact(self, folder: Path) -> None:
        self._call("log_artifact", folder)

    def finish(self, status: str) -> None:
        self._call("finish", status)


@contextmanager
def tracking(tracker: Tracker, name: str, config: dict[str, Any]) -> Iterator[Guarded]:
    """Start ``tracker`` with ``config`` on the main rank (the others get `NoTracker`), yield
    it guarded, and finish it with the run's status: "finished", "failed" on an error,
    "killed" on Ctrl-C.

    Raises:
        TrackerError: the tracker could not start (on every rank: none trains without it).
    """
    if not distributed.is_main():
        tracker = NoTracker()
    problem = ""
    try:
        tracker.start(config)
    except Exception as e:  # any backend error at start: stop before training
        problem = f"{type(e).__name__}: {e}"
    if not distributed.agree(1 if problem else 0):
        problem = problem or "the main rank's tracker did not start"
    if problem:
        raise TrackerError(
            f"train.tracker={name} could not start ({problem}); fix it or set train.tracker=none"
        )
    guarded, status = Guarded(tracker, name), "failed"
    try:
        yield guarded
        status = "finished"
    except KeyboardInterrupt:
        status = "killed"
        raise
    finally:
        guarded.finish(status)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The figures of an epoch's metrics.jsonl record: losses, accuracies, F1, the selection
    score, seconds, whether it was the best epoch (1 or 0), and the learning rate of each
    optimizer group (``lr/0``, ``lr/1``)."""
    out = {key: float(value) for key, value in record.items() if _number(value) and key != "epoch"}
    out.update({f"lr/{i}": float(lr) for i, lr in enumerate(record.get("lr", []))})
    return out


def final_metrics_of(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The bundle's metrics of every split as ``final/<split>_<metric>`` figures."""
    return {
        f"final/{split}_{key}": float(value)
        for split, figures in metrics.items()
        for key, value in figures.items()
        if _number(value)
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bools too: "best" is 1 or 0


def _millis() -> int:
    return int(time.time() * 1000)
