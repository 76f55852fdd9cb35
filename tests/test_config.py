"""Training configs: the pydantic sections, overrides, error reports, the schema and key table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from fusion.config import ConfigError, RunConfig, config_from_dict, load_config
from fusion.config_cli import BEGIN, END, readme_with_table
from fusion.config_keys import key_rows, keys_markdown, schema
from nlp.linker_settings import LINKER_DEFAULTS
from tests.conftest import run_cli_in_process

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
TINY = REPO / "configs" / "tiny.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_shipped_configs_load_and_match_the_schema(path: Path) -> None:
    config = load_config(path)
    jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema())
    assert config_from_dict(config.to_dict()) == config  # what a bundle stores loads back


def test_config_paths_stay_as_written_relative_to_the_working_directory() -> None:
    config = load_config(TINY)
    assert config.kg.files == ("tests/fixtures/tiny.ttl",)
    assert config.data.tests == {"unseen": "tests/fixtures/tiny_test.csv"}


def test_config_overrides_are_typed_by_their_field() -> None:
    config = load_config(
        TINY,
        [
            "output=2024",  # a string field keeps the text as written
            "data.train=yes",
            "train.epochs=3",
            "train.lr=1e-2",
            "train.mask_label_facts=auto",
            "subgraph.hops=AUTO",
            "kg.files=a.ttl",  # one string where a list is expected
            "linker.types=[http://x/A, http://x/B]",
        ],
    )
    assert config.output == "2024" and config.data.train == "yes"
    assert config.train.epochs == 3 and config.train.lr == 0.01
    assert config.train.mask_label_facts is None and config.subgraph.hops is None
    assert config.kg.files == ("a.ttl",)
    assert config.linker.types == ("http://x/A", "http://x/B")


def test_config_every_problem_is_reported_at_once_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            TINY,
            [
                "train.lerning_rate=0.1",
                "train.lr=-1",
                "subgraph.hops=9",
                "train.epochs=many",
                "train.class_weights=maybe",
                "model.mode=huge",
                "kg.files=[1]",
            ],
        )
    assert dict(info.value.problems) == {
        "kg.files": "must be a list of strings (got [1])",
        "subgraph.hops": "must be an integer from 1 to 4 or 'auto' (got 9)",
        "model.mode": "must be one of ['text', 'graph', 'fused', 'counter'] (got 'huge')",
        "train.epochs": "must be an integer of 1 or more (got 'many')",
        "train.lr": "must be a number above 0 (got -1)",
        "train.class_weights": "must be true or false (got 'maybe')",
        "train.lerning_rate": "unknown key; did you mean train.lr?",
    }
    lines = str(info.value).splitlines()
    assert lines[0] == f"7 problem(s) in {TINY}:"
    assert "  - train.lr: must be a number above 0 (got -1)" in lines


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("train.optimiser=sgd", ("train.optimiser", "unknown key; train has epochs, batch_size")),
        ("train.hidden=8", ("train.hidden", "unknown key; did you mean model.hidden?")),
        ("learning_rate=0.1", ("learning_rate", "unknown key; did you mean train.lr?")),
        ("subgraph.relation_counts=true", ("subgraph.relation_counts", "replaced by")),
        ("train.lr.x=1", ("train.lr.x", "train.lr is a value, not a section")),
        ("data=[a.csv]", ("data", "must be a section (a mapping of keys) (got ['a.csv'])")),
    ],
)
def test_config_unknown_and_misplaced_keys_are_named_with_a_fix(
    override: str, problem: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TINY, [override])
    ((key, message),) = info.value.problems
    assert key == problem[0] and message.startswith(problem[1])


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            ["data.val_fraction=0.5", "data.test_fraction=0.5"],
            ("data", "val_fraction + val_seen_fraction + test_fraction leave less than 10%"),
        ),
        (
            ["model.mode=graph", "model.graph_encoder=none"],
            ("model", "graph_encoder none leaves graph mode nothing to read"),
        ),
        (
            ["train.self_training_rounds=1"],
            ("train.self_training_rounds", "needs 'data.unlabeled'"),
        ),
        (
            ["kg.store=s", "kg.files=[]", "model.graph_encoder=paths"],
            ("model.graph_encoder", "paths walks"),
        ),
    ],
)
def test_config_settings_that_contradict_each_other_are_refused(
    overrides: list[str], problem: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TINY, overrides)
    ((key, message),) = info.value.problems
    assert key == problem[0] and message.startswith(problem[1])


def test_config_a_stored_config_with_a_bad_value_names_where_it_came_from() -> None:
    data = RunConfig().to_dict()
    data["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"^bundle\.json holds an invalid config: train\.epochs"):
        config_from_dict(data, "bundle.json")


def test_config_sections_check_themselves_when_copied() -> None:
    train = load_config(TINY).train
    assert dataclasses.replace(train, lr=0.5).lr == 0.5
    with pytest.raises(ValidationError, match="lr"):
        dataclasses.replace(train, lr=-1.0)


def test_config_linker_defaults_are_defined_once() -> None:
    from spacy.language import Language

    import nlp.linker  # noqa: F401  (registers the kg_linker factory)

    factory = Language.get_factory_meta("kg_linker").default_config or {}
    for name, value in LINKER_DEFAULTS.spacy_config().items():
        assert factory[name] == value, name
    section = RunConfig().linker
    assert section.threshold == LINKER_DEFAULTS.threshold == 0.55
    assert (section.head_match, section.types) == (LINKER_DEFAULTS.head_match, ())
    described = {row[0]: row[3] for row in key_rows()}
    assert described["linker.threshold"] == "minimum final score of a link"


def test_config_every_key_has_a_description() -> None:
    rows = key_rows()
    assert len(rows) > 60
    assert [key for key, _, _, meaning in rows if not meaning.strip()] == []


def test_config_readme_table_is_the_models_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == "\n" + keys_markdown(), (
        "README.md's config table differs from fusion/settings.py: run "
        "`kgfuse config keys --readme README.md`"
    )
    assert readme_with_table(readme) == readme


def test_config_cli_prints_keys_schema_and_one_line_per_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_cli_in_process(monkeypatch, "config", "keys", "--markdown") == 0
    assert capsys.readouterr().out == keys_markdown()

    out = tmp_path / "schema.json"
    assert run_cli_in_process(monkeypatch, "config", "schema", "-o", str(out)) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == schema()
    assert "lr" in json.loads(out.read_text())["$defs"]["TrainSettings"]["properties"]

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\nrest\n", encoding="utf-8")
    assert run_cli_in_process(monkeypatch, "config", "keys", "--readme", str(readme)) == 0
    assert readme.read_text(encoding="utf-8") == f"intro\n{BEGIN}\n{keys_markdown()}{END}\nrest\n"
    readme.write_text("no markers\n", encoding="utf-8")
    assert run_cli_in_process(monkeypatch, "config", "keys", "--readme", str(readme)) == 1
    assert "no <!-- config:begin -->" in capsys.readouterr().err

    code = run_cli_in_process(monkeypatch, "train", str(TINY), "train.lr=0", "train.lerning_rate=1")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[1:] == [
        "  - train.lr: must be a number above 0 (got 0)",
        "  - train.lerning_rate: unknown key; did you mean train.lr?",
    ]
