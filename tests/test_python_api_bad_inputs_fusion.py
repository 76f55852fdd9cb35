"""The nlp and fusion Python API used carelessly (the linker, configs, the Predictor, predictions
and output folders): every bad argument is an error that names the problem and the fix, never an
exception from deep inside spaCy, YAML or the tokenizer, a silent wrong answer, or a half-written
output. The kg cases are in tests/test_python_api_bad_inputs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

import kg
from fusion.config import ConfigError, config_from_dict, load_config
from fusion.export import export_bundle
from fusion.predict import Predictor
from fusion.prediction import Prediction, PredictionError
from fusion.resources import UnknownRelationError
from fusion.split import EntitySplit, write_split
from kg.errors import OutputError
from nlp.alias_table import AliasTable
from nlp.errors import LinkingError
from nlp.linker import from_kg
from nlp.linker_index import save_index
from nlp.texts import DataError
from tests.conftest import FIXTURES, REPO

EX = "http://example.org/tiny/"


def test_from_kg_names_an_unknown_setting_and_the_closest_one(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(LinkingError, match=r"unknown kg_linker setting.*'treshold'.*'threshold'"):
        from_kg(tiny_kg, treshold=0.5)


def test_from_kg_names_a_setting_of_the_wrong_type_without_a_config_dump(
    tiny_kg: kg.KnowledgeGraph,
) -> None:
    with pytest.raises(LinkingError, match=r"'types': .* is not list\[str\].*pass a list") as e:
        from_kg(tiny_kg, types=EX + "Disease")
    assert "stop_aliases" not in str(e.value)  # not spaCy's dump of the whole config


@pytest.mark.parametrize("bad", [None, [FIXTURES / "tiny.ttl"], 5])
def test_from_kg_refuses_what_is_not_a_graph_or_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match="from_kg takes a graph"):
        from_kg(bad)  # type: ignore[arg-type]


def test_from_kg_refuses_a_model_name_given_as_the_pipeline(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(TypeError, match=r"nlp is a spaCy pipeline .*not str 'en'"):
        from_kg(tiny_kg, nlp="en")  # type: ignore[arg-type]


def test_from_kg_leaves_a_callers_pipeline_as_it_was_when_it_fails(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    pipeline = spacy.blank("en")
    with pytest.raises(LinkingError, match="alias table"):
        from_kg(tiny_kg, nlp=pipeline, aliases=str(tmp_path / "missing.tsv"))
    assert "kg_linker" not in pipeline.pipe_names
    from_kg(tiny_kg, nlp=pipeline)  # a second try is not refused as a duplicate component
    assert [e.kb_id_ for e in pipeline("I have a fever").ents] == [EX + "fever"]


DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def test_load_config_refuses_one_override_string_read_character_by_character() -> None:
    with pytest.raises(ConfigError, match=r"list of key=value strings.*\['train.epochs=3'\]"):
        load_config(DEMO_CONFIG, "train.epochs=3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="override 3 is not a key=value string"):
        load_config(DEMO_CONFIG, [3])  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [5, [str(DEMO_CONFIG)]])
def test_load_config_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(ConfigError, match="path of a YAML file"):
        load_config(bad)  # type: ignore[arg-type]


def test_load_config_given_a_dict_points_to_config_from_dict() -> None:
    with pytest.raises(ConfigError, match="config_from_dict"):
        load_config({"train": {"epochs": 3}})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, [1], "train"])
def test_config_from_dict_refuses_what_is_not_a_mapping(bad: object) -> None:
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        config_from_dict(bad)  # type: ignore[arg-type]


def test_load_config_refuses_an_empty_output_that_would_train_into_the_current_folder() -> None:
    with pytest.raises(ConfigError, match=r"output: must name the run's folder"):
        load_config(DEMO_CONFIG, ["output="])


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return Predictor.from_dir(tiny_bundle)


@pytest.mark.parametrize("bad", [None, 5])
def test_predictor_from_dir_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match="bundle folder is a path"):
        Predictor.from_dir(bad)  # type: ignore[arg-type]


def test_with_graph_refuses_a_path_or_none_naming_the_fix(predictor: Predictor) -> None:
    with pytest.raises(
        TypeError, match=r"with_graph takes a compiled graph, not the path.*kg\.load"
    ):
        predictor.with_graph(str(FIXTURES / "tiny.ttl"))
    with pytest.raises(TypeError, match="with_graph takes a compiled graph"):
        predictor.with_graph(None)


def test_with_graph_of_another_kg_names_the_relations_and_a_missing_label_node(
    predictor: Predictor, tmp_path: Path
) -> None:
    with pytest.raises(UnknownRelationError, match="not trained with"):
        predictor.with_graph(kg.load(REPO / "data" / "demo" / "kg.ttl"))
    # the same relations, but without the node the label "viral" is scored through
    ttl = (FIXTURES / "tiny.ttl").read_text().replace("ex:sars_cov_2", "ex:sars_cov_two")
    (tmp_path / "other.ttl").write_text(ttl)
    with pytest.raises(UnknownRelationError, match=r"lacks .*sars_cov_2.*label 'viral'"):
        predictor.with_graph(kg.load(tmp_path / "other.ttl"))


def test_resources_link_and_prepare_refuse_one_string(predictor: Predictor) -> None:
    for call in (predictor.resources.link, predictor.resources.prepare):
        with pytest.raises(DataError, match=r"not one str: pass \[text\]"):
            call("I have a fever")  # type: ignore[arg-type]  # used to link "I", " ", "h"...
    with pytest.raises(DataError, match="text 2 is NoneType"):
        predictor.resources.link(["fever", None])  # type: ignore[list-item]


def test_predict_refuses_a_generator_it_would_use_up(predictor: Predictor) -> None:
    with pytest.raises(DataError, match=r"not generator: pass list\(texts\)"):
        predictor.predict(t for t in ["I have a fever"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"probabilities": {"flu": float("nan")}}, "not finite"),
        ({"graph_weight": float("inf")}, "not finite"),
        ({"text": "fever \ud800"}, r"lone surrogate U\+D800"),
    ],
)
def test_prediction_json_line_refuses_what_json_or_utf8_cannot_carry(
    fields: dict[str, object], problem: str
) -> None:
    values: dict[str, object] = {
        "text": "fever",
        "label": "flu",
        "probabilities": {"flu": 1.0},
        "entities": [],
    }
    prediction = Prediction(**{**values, **fields})  # type: ignore[arg-type]
    with pytest.raises(PredictionError, match=problem):
        prediction.json_line()
    assert json.loads(Prediction(**values).json_line()) == values  # type: ignore[arg-type]


def test_save_index_and_from_kg_index_never_replace_a_folder_of_other_files(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    pipeline = from_kg(tiny_kg)
    with pytest.raises(OutputError, match=r"holds other files \(notes\.txt\), not a linker index"):
        save_index(pipeline, tmp_path)
    with pytest.warns(UserWarning, match="could not write the linker index"):
        from_kg(tiny_kg, index=str(tmp_path))  # links without the index, and says why
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    save_index(pipeline, tmp_path / "index")
    save_index(pipeline, tmp_path / "index")  # an index is replaced by a newer one


def test_export_bundle_never_replaces_a_folder_of_other_files(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds other files \(notes\.txt\), not a model bundle"):
        export_bundle(tiny_bundle, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_write_split_never_replaces_a_folder_of_other_files(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    (tmp_path / "train.csv").write_text("text,label\nfever,flu\n")  # the input, say
    split = EntitySplit(train=[], val=[], test=[], test_seen=[], held_out=[], mentions=[])
    with pytest.raises(OutputError, match=r"holds other files \(train\.csv\), not a split"):
        write_split(split, tiny_kg, tmp_path, "text", "label", {})
    assert (tmp_path / "train.csv").read_text() == "text,label\nfever,flu\n"


def test_kg_entities_finds_the_spans_under_a_custom_spans_key(tiny_kg: kg.KnowledgeGraph) -> None:
    doc = from_kg(tiny_kg, spans_key="links")("I have a fever and a cough")
    assert [s.kb_id_ for s in doc._.kg_entities] == [EX + "fever", EX + "cough"]  # was []
    assert [s.text for s in doc.spans["links"]] == ["fever", "cough"]


@pytest.mark.parametrize("bad", [None, 5])
def test_alias_table_load_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match="alias table is a path"):
        AliasTable.load(bad)  # type: ignore[arg-type]


def test_linker_set_kg_and_set_aliases_name_what_they_take(tiny_kg: kg.KnowledgeGraph) -> None:
    pipeline = from_kg(tiny_kg)
    linker = pipeline.get_pipe("kg_linker")
    with pytest.raises(TypeError, match=r"set_kg takes a graph .*kg\.open\('out/kg'\)"):
        linker.set_kg("out/kg")
    with pytest.raises(TypeError, match="set_kg takes a graph"):
        linker.set_kg(None)
    with pytest.raises(TypeError, match="set_aliases takes an AliasTable"):
        linker.set_aliases(5)
    assert [e.kb_id_ for e in pipeline("a fever").ents] == [EX + "fever"]  # still linking


def test_load_config_refuses_a_section_given_twice(tmp_path: Path) -> None:
    text = (REPO / "configs" / "tiny.yaml").read_text() + "\ntrain:\n  lr: 0.1\n"
    (tmp_path / "twice.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"'train' is given twice \(lines \d+ and \d+\)"):
        load_config(tmp_path / "twice.yaml")  # YAML kept the last: epochs etc. were dropped


@pytest.mark.parametrize("bad", [5, [str(FIXTURES / "tiny.ttl")]])
def test_add_pipe_with_a_kg_that_is_not_a_path_names_the_fix(bad: object) -> None:
    pipeline = spacy.blank("en")
    with pytest.raises(LinkingError, match=r"'kg' is the path of a compiled KG folder") as e:
        pipeline.add_pipe("kg_linker", config={"kg": bad})
    if isinstance(bad, list):
        assert "kg.load([...]).save" in str(e.value)


@pytest.mark.parametrize("given", ["configs/tiny.yaml", {"output": "runs/x"}])
def test_train_run_given_a_path_or_a_dict_names_main_and_load_config(given: object) -> None:
    from fusion.train import run

    with pytest.raises(TypeError, match=r"run takes a RunConfig.*fusion\.train\.main\(path"):
        run(given)  # type: ignore[arg-type]


def test_load_config_keeps_yaml_merge_keys_and_their_overrides(tmp_path: Path) -> None:
    text = (REPO / "configs" / "tiny.yaml").read_text().replace("train:\n", "train: &base\n", 1)
    text += "\nmodel:\n  hidden: 16\n"  # a section given twice is still refused ...
    (tmp_path / "twice.yaml").write_text(text)
    with pytest.raises(ConfigError, match="'model' is given twice"):
        load_config(tmp_path / "twice.yaml")
    merged = (
        (REPO / "configs" / "tiny.yaml")
        .read_text()
        .replace("train:\n", "train: &base\n", 1)
        .replace("output: runs/tiny", "output: runs/tiny\nalso: {<<: *base, epochs: 3}")
    )
    (tmp_path / "merged.yaml").write_text(merged)
    with pytest.raises(ConfigError) as e:  # ... but `<<` and a key it brings overridden are YAML
        load_config(tmp_path / "merged.yaml")
    assert "also: unknown key" in str(e.value) and "twice" not in str(e.value)
