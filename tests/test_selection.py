"""Every choice rests on validation: training and tuning never read a test file to choose,
selection reads val:unseen, and the automatic settings say what they chose and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from safetensors.numpy import load_file

import fusion.data
from fusion.config import load_config
from fusion.settings import TrainSettings
from fusion.setup import SelectionWarning, Workspace, plan_run
from fusion.train import run
from fusion.tune import (
    TUNE_IN_USE,
    default_settings,
    settings_of,
    space_for,
    study_name,
    tune,
)
from kg.errors import OutputError
from kg.folder_lock import folder_lock

from .conftest import species_overrides

pytestmark = pytest.mark.integration


def config_for(data: dict[str, Path], tiny_bert: Path, out: Path, *more: str):  # type: ignore[no-untyped-def]
    return load_config(
        None, species_overrides(data, tiny_bert, out, "data.val_fraction=0.25", *more)
    )


@pytest.fixture(scope="module")
def trained(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory
):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("selection") / "run"
    return run(config_for(species_data, tiny_bert, out), progress=False)


def test_defaults_hold_out_entities_and_say_what_they_chose(trained) -> None:  # type: ignore[no-untyped-def]
    assert {"val:unseen", "val:seen", "val", "test:seen", "test:unseen"} <= set(trained.metrics)
    assert trained.metrics["val:unseen"]["n"] >= 30
    choices = trained.choices
    assert choices["selection"]["value"] == "unseen"
    assert choices["train.mask_label_facts"]["value"] == 1.0  # the type facts restate labels
    assert choices["subgraph.hops"]["value"] in (1, 2, 3)
    assert "reference" in choices["subgraph.hops"]["reason"]
    meta = json.loads((trained.bundle / "bundle.json").read_text())
    assert meta["config"]["subgraph"]["hops"] == choices["subgraph.hops"]["value"]
    assert meta["training"]["choices"] == choices
    assert 0.25 <= meta["temperature"] <= 10.0 and meta["path_sequences"]
    lines = [json.loads(x) for x in (trained.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["selection"] == "unseen" and r["score"] == r["val:unseen_accuracy"] for r in lines)


def test_selection_never_reads_a_test_file(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path, trained: Any
) -> None:
    # other test files (labels rotated): epochs, checkpoint, temperature and weights are the same
    swapped = tmp_path / "swapped.csv"
    text = species_data["unseen"].read_text(encoding="utf-8")
    swapped.write_text(
        text.replace(",water", ",tmp").replace(",fire", ",water").replace(",tmp", ",fire")
    )
    other = config_for(
        {**species_data, "seen": swapped, "unseen": swapped}, tiny_bert, tmp_path / "other"
    )
    again = run(other, progress=False)
    assert again.best_epoch == trained.best_epoch and again.temperature == trained.temperature
    assert again.choices == trained.choices
    first = load_file(str(trained.bundle / "model.safetensors"))
    second = load_file(str(again.bundle / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)
    assert again.metrics["val:unseen"] == trained.metrics["val:unseen"]
    assert again.metrics["test:unseen"] != trained.metrics["test:unseen"]  # the tests did differ


def test_tune_never_opens_a_test_file_and_resumes(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real = fusion.data.read_examples

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fusion.data, "read_examples", spy)
    config = config_for(
        species_data, tiny_bert, tmp_path / "tuned", "train.epochs=1", "model.hidden=24"
    )
    ran: list[dict[str, Any]] = []
    summary = tune(config, trials=2, progress=False, on_trial=ran.append)
    tests = {str(species_data["seen"]), str(species_data["unseen"])}
    assert opened and not tests & set(opened)
    assert summary["trials"] == 2 and len(ran) == 2
    # the baselines run first: the config as given (outside SPACE: 1 epoch, hidden 24), then
    # kgfuse's defaults, so the best is never below either on validation
    assert ran[0]["params"] == settings_of(config)
    assert ran[0]["params"]["train.epochs"] == 1 and ran[0]["params"]["model.hidden"] == 24
    defaults = settings_of(default_settings(config))
    assert ran[1]["params"] == defaults
    assert (
        defaults["train.epochs"] == TrainSettings().epochs and defaults["train.probe_init"] is None
    )
    assert summary["score"] == max(r["score"] for r in ran)
    best = Path(summary["config"]).read_text(encoding="utf-8")
    assert best.startswith(f"# kgfuse train {summary['config']}")
    header = [line for line in best.splitlines() if line.startswith("#")]
    assert "on validation only" in header[1] and "val:unseen" in header[2]
    assert not any("test:" in line for line in header)  # no test figure justifies a setting
    tuned = load_config(summary["config"])  # the written config loads as it is
    assert tuned.train.lr == pytest.approx(summary["params"]["train.lr"])
    # interrupted: the study lives in SQLite; asking for 3 runs one more trial only
    more = tune(config, trials=3, progress=False, on_trial=ran.append)
    assert more["trials"] == 3 and len(ran) == 3
    assert not tests & set(opened)


def test_a_failed_train_leaves_no_output_folder(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    from nlp.texts import DataError

    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nx,y\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="no column 'label'"):
        run(config_for({**species_data, "train": bad}, tiny_bert, out), progress=False)
    assert not out.exists()
    missing_map = {**species_data, "label_map": tmp_path / "nope.tsv"}
    with pytest.raises(DataError, match=r"label map .*nope.tsv not found"):
        run(config_for(missing_map, tiny_bert, out), progress=False)
    assert not out.exists()
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_held_out_entities_lose_their_label_facts_for_training_and_validation(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    from fusion.setup import Workspace, plan_run

    config = config_for(species_data, tiny_bert, tmp_path / "plan", "subgraph.hops=2")
    workspace = Workspace.open(config, None)
    plan = plan_run(config, workspace)
    graph = workspace.graph
    held = {
        e
        for spans, unseen in zip(plan.spans["val"], plan.splits.val_unseen, strict=True)
        if unseen
        for e in workspace.entity_ids(spans)
    }
    assert plan.hide_val_facts and plan.hidden == held
    counter = plan.resources.counter
    # a held-out species' relative is counted as if the held-out species had no type fact
    for h in sorted(held):
        relatives = [
            n.node for n in graph.neighbors_of(h) if "/species/species/" in graph.iri(n.node)
        ]
        if relatives:
            break
    seen = counter.features([relatives[0]])
    hidden = counter.features([relatives[0]], masked=plan.hidden)
    assert (hidden <= seen).all() and (hidden < seen).any()
    texts = [e.text for e in plan.splits.val]
    prepared = plan.resources.prepare(texts[:1], spans=plan.spans["val"][:1], hidden=plan.hidden)
    own = set(prepared[0].linked) if plan.val_masked[0] else set()
    expected = counter.features(prepared[0].linked, masked=own | plan.hidden)
    assert (prepared[0].counts == expected).all()


def test_tune_over_seeds_scores_the_mean_of_each_seeds_own_validation(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    config = config_for(species_data, tiny_bert, tmp_path / "seeds", "train.epochs=1")
    summary = tune(config, trials=1, progress=False, seeds=2)
    folder = Path(summary["attrs"]["folder"])
    runs = [folder / f"seed-{s}" for s in (0, 1)]
    scores = []
    for run_dir in runs:
        meta = json.loads((run_dir / "bundle" / "bundle.json").read_text())
        assert meta["config"]["train"]["seed"] == int(run_dir.name.split("-")[1])
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        scores.append(max(json.loads(x)["score"] for x in lines))
    assert summary["attrs"]["seed_scores"] == pytest.approx(scores)
    assert summary["score"] == pytest.approx(sum(scores) / 2)
    best = Path(summary["config"]).read_text(encoding="utf-8")
    assert "(mean of 2 seeds: " in best.splitlines()[1]
    # a one-seed study of the same config is another study: its score is not the mean's
    assert study_name(space_for(config), 2) != study_name(space_for(config))


def _study_with_a_running_trial(config: Any) -> tuple[str, str, Any]:
    """The storage URL and name of ``config``'s tuning study in ``OUTPUT/tune``, made here, and
    a trial of it left running."""
    import optuna

    root = Path(config.output) / "tune"
    root.mkdir(parents=True)
    storage, name = f"sqlite:///{root / 'study.db'}", study_name(space_for(config))
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    return storage, name, study.ask()


def test_tune_closes_a_trial_a_kill_left_running_and_runs_its_settings_again(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    import optuna

    config = config_for(species_data, tiny_bert, tmp_path / "killed", "train.epochs=1")
    storage, name, killed = _study_with_a_running_trial(config)  # as a kill -9 leaves it
    lr = killed.suggest_float("train.lr", 1e-3, 3e-2, log=True)
    summary = tune(config, trials=1, progress=False)
    states = [t.state.name for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states == ["FAIL", "COMPLETE"] and summary["complete"] == 1
    assert summary["params"]["train.lr"] == lr  # the interrupted settings ran again


def test_a_second_tuning_of_a_study_is_refused_and_leaves_its_running_trial_alone(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    import optuna

    config = config_for(species_data, tiny_bert, tmp_path / "busy", "train.epochs=1")
    storage, name, _ = _study_with_a_running_trial(config)  # the first tuning's trial
    root = Path(config.output) / "tune"
    with folder_lock(root, *TUNE_IN_USE), pytest.raises(OutputError) as refused:
        tune(config, trials=1, progress=False)
    assert str(refused.value).startswith(f"{root} is in use by another kgfuse tune (process ")
    assert "output=FOLDER" in str(refused.value)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in trials] == ["RUNNING"]  # not closed as interrupted


def test_a_given_val_file_is_judged_on_its_texts_about_entities_training_lacks(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    # a val file of kgfuse split's kind: texts about species no training text names, then others
    unseen = species_data["unseen"].read_text(encoding="utf-8").splitlines()
    seen = species_data["seen"].read_text(encoding="utf-8").splitlines()
    val = tmp_path / "val.csv"
    val.write_text("\n".join(unseen + seen[1:]) + "\n", encoding="utf-8")
    config = config_for(species_data, tiny_bert, tmp_path / "run", f"data.val={val}")
    with pytest.warns(SelectionWarning, match="only 24 val:unseen texts about 8"):
        plan = plan_run(config, Workspace.open(config, None))
    assert plan.splits.val_unseen == [True] * (len(unseen) - 1) + [False] * (len(seen) - 1)
    assert plan.selection.on == "mix"  # 24 texts are too few to rank alone, but they count
