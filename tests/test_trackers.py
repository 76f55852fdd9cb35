"""train.tracker: a tiny training with each tracker leaves, in local files under the run folder,
what the tracker's own reader finds: the config, the figures of every epoch, the final metrics
and the bundle. Every backend is installed by ``make test`` (the tracking extra); no test reaches
past loopback."""

from __future__ import annotations

import glob
import json
import logging
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fusion import distributed
from fusion.config import ConfigError, load_config
from fusion.trackers import TensorBoardTracker, TrackerError, tracking
from fusion.train import TrainResult, main
from tests.conftest import free_port

pytestmark = pytest.mark.integration
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


LOCAL = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail a test whose Python code looks up a host name or connects anywhere but loopback
    or a local socket (as CI, which has no network at run time, would)."""
    tried: list[Any] = []
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def local_only(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL:
            tried.append(address)
            raise OSError(f"the tests have no network: refused a connection to {address}")
        return connect(self, address)

    def local_names(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (*LOCAL, None):
            tried.append(host)
            raise socket.gaierror(f"the tests have no network: refused to look up {host}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket, "getaddrinfo", local_names)
    yield tried
    assert not tried, f"a tracker tried the network: {tried}"


def train(tiny_bert: Path, out: Path, *more: str) -> TrainResult:
    overrides = [f"encoder.path={tiny_bert}", f"output={out}", "train.threads=1", *more]
    return main(TINY, overrides, progress=False)


def epochs_of(result: TrainResult) -> list[dict[str, Any]]:
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_mlflow_run_holds_config_metrics_and_bundle(tiny_bert: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    result = train(tiny_bert, tmp_path / "run", "train.tracker=mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kgfuse")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["train.tracker"] == "mlflow"
    assert run.data.params["model.mode"] == "fused" and run.data.params["train.lr"] == "0.01"
    epochs = epochs_of(result)
    for key in ("train_loss", "score", "val:seen_accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(e["epoch"], e[key]) for e in epochs]
    lrs = client.get_metric_history(run.info.run_id, "lr/1")
    assert [m.value for m in lrs] == [e["lr"][1] for e in epochs]
    final = run.data.metrics["final/test:unseen_accuracy"]
    assert final == result.metrics["test:unseen"]["accuracy"]
    bundle = client.download_artifacts(run.info.run_id, "bundle", str(tmp_path / "copy"))
    assert (Path(bundle) / "bundle.json").read_bytes() == (
        result.bundle / "bundle.json"
    ).read_bytes()
    config = json.loads(
        (Path(client.download_artifacts(run.info.run_id, "config.json"))).read_text()
    )
    assert config["train"]["tracker"] == "mlflow"


def test_tensorboard_event_file_holds_every_epoch_and_the_config(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    # the old spelling, train.tensorboard=true, still turns TensorBoard on
    result = train(tiny_bert, tmp_path / "run", "train.tensorboard=true")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    epochs = epochs_of(result)
    for key in ("train_loss", "score", "val:seen_accuracy", "lr/0"):
        expected = [e["lr"][0] if key == "lr/0" else e[key] for e in epochs]
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [e["epoch"] for e in epochs]
        assert [s.value for s in scalars] == pytest.approx(expected, rel=1e-6)
    final = events.Scalars("final/test:unseen_accuracy")[0].value
    assert final == pytest.approx(result.metrics["test:unseen"]["accuracy"])
    config = make_ndarray(events.Tensors("config/text_summary")[0].tensor_proto).item().decode()
    assert json.loads(config)["train"]["tracker"] == "tensorboard"
    bundle = make_ndarray(events.Tensors("bundle/text_summary")[0].tensor_proto).item().decode()
    assert Path(bundle) == result.bundle.resolve()


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B offline run file (``run-ID.wandb``): LevelDB's log format, blocks
    of 32 KiB holding chunks (CRC, length, type) of protobuf `Record`s, after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the rest of the block is padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_holds_config_metrics_and_bundle(tiny_bert: Path, tmp_path: Path) -> None:
    result = train(tiny_bert, tmp_path / "run", "train.tracker=wandb")
    [path] = glob.glob(str(tmp_path / "run" / "wandb" / "offline-run-*" / "run-*.wandb"))
    records = list(wandb_records(Path(path)))
    kinds = [r.WhichOneof("record_type") for r in records]
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["train"]["tracker"] == "wandb" and config["model"]["mode"] == "fused"
    steps: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item
            }
            steps.setdefault(r.history.step.num, {}).update(items)
    epochs = epochs_of(result)
    assert sorted(steps) == [e["epoch"] for e in epochs]
    for e in epochs:
        assert steps[e["epoch"]]["train_loss"] == pytest.approx(e["train_loss"])
        assert steps[e["epoch"]]["lr/0"] == pytest.approx(e["lr"][0])
    last = steps[epochs[-1]["epoch"]]
    assert last["final/test:unseen_accuracy"] == result.metrics["test:unseen"]["accuracy"]
    [artifact] = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    files = {
        p.relative_to(result.bundle).as_posix() for p in result.bundle.rglob("*") if p.is_file()
    }
    assert artifact.type == "model" and {c.path for c in artifact.manifest.contents} == files
    assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0


def test_an_unknown_tracker_is_refused_with_the_allowed_names() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(TINY, ["train.tracker=comet"])
    assert "train.tracker: must be one of ['none', 'tensorboard', 'mlflow', 'wandb']" in str(
        e.value
    )
    with pytest.raises(ConfigError, match=r"contradicts train\.tracker=mlflow"):
        load_config(TINY, ["train.tensorboard=true", "train.tracker=mlflow"])
    with pytest.raises(ConfigError, match=r"train\.tracker_uri is for train\.tracker=mlflow"):
        load_config(TINY, ["train.tracker=wandb", "train.tracker_uri=http://127.0.0.1:5000"])
    assert load_config(TINY, ["train.tensorboard=false"]).train.tracker == "none"


@pytest.mark.parametrize(
    ("tracker", "modules", "package"),
    [
        ("mlflow", ("mlflow", "mlflow.tracking"), "mlflow-skinny"),
        ("wandb", ("wandb",), "wandb"),
        ("tensorboard", ("torch.utils.tensorboard",), "tensorboard"),
    ],
)
def test_a_missing_tracker_package_is_named_before_anything_is_written(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tracker: str,
    modules: tuple[str, ...],
    package: str,
) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(TrackerError, match=f"pip install '{package}'"):
        train(tiny_bert, tmp_path / "run", f"train.tracker={tracker}")
    assert not (tmp_path / "run").exists()


def test_a_tracker_that_cannot_start_stops_the_run_before_training(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: TensorBoardTracker, config: dict[str, Any]) -> None:
        raise PermissionError(f"{self.folder} is read-only")

    monkeypatch.setattr(TensorBoardTracker, "start", refuse)
    with pytest.raises(
        TrackerError, match=r"train.tracker=tensorboard could not start .*read-only"
    ):
        train(tiny_bert, tmp_path / "run", "train.tracker=tensorboard")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_an_mlflow_server_that_does_not_answer_stops_the_run_before_anything_is_written(
    tiny_bert: Path, tmp_path: Path
) -> None:
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TrackerError, match=rf"train.tracker=mlflow could not start .*{server}"):
        train(tiny_bert, tmp_path / "run", "train.tracker=mlflow", f"train.tracker_uri={server}")
    assert not (tmp_path / "run").exists()


def test_a_tracker_failing_mid_run_is_a_warning_and_the_run_completes(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def disk_full(self: TensorBoardTracker, step: int, metrics: dict[str, float]) -> None:
        calls.append(step)
        raise OSError("No space left on device")

    monkeypatch.setattr(TensorBoardTracker, "log_metrics", disk_full)
    with caplog.at_level(logging.WARNING, logger="fusion.trackers"):
        result = train(tiny_bert, tmp_path / "run", "train.tracker=tensorboard")
    assert calls == [1]  # not called again once it failed
    assert [e["epoch"] for e in epochs_of(result)] == [1, 2]
    assert (result.bundle / "bundle.json").is_file()
    assert "train.tracker=tensorboard failed in log_metrics" in caplog.text
    assert "No space left on device" in caplog.text


def test_only_the_main_rank_starts_the_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []

    class Recording:
        def start(self, config: dict[str, Any]) -> None:
            started.append(config)

        def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
            raise AssertionError("another rank logged")

        def log_artifact(self, folder: Path) -> None:
            raise AssertionError("another rank logged")

        def finish(self, status: str) -> None:
            raise AssertionError("another rank logged")

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    with tracking(Recording(), "mlflow", {"train": {}}) as tracker:
        tracker.log_metrics(1, {"train_loss": 1.0})
        tracker.log_artifact(Path("bundle"))
    assert started == []
