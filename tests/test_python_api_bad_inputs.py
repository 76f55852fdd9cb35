"""The Python API used carelessly: every bad argument is an error that names the problem and
the fix (a kgfuse error, or a TypeError / ValueError of our own wording), never an exception
from deep inside numpy, pathlib or spaCy, a silent wrong answer, or a half-written output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import spacy

import kg
from fusion.config import ConfigError, config_from_dict, load_config
from fusion.export import export_bundle
from fusion.predict import Predictor
from fusion.prediction import Prediction, PredictionError
from fusion.resources import UnknownRelationError
from fusion.split import EntitySplit, write_split
from kg.errors import (
    EntityNotFoundError,
    KGLoadError,
    KGReadOnlyError,
    KGStoreError,
    OutputError,
)
from kg.store_graph import StoreGraph
from nlp.alias_table import AliasTable
from nlp.errors import LinkingError
from nlp.linker import from_kg
from nlp.linker_index import save_index
from nlp.texts import DataError
from tests.conftest import FIXTURES, REPO, oxigraph_store

EX = "http://example.org/tiny/"


@pytest.fixture(scope="module")
def saved_kg(tiny_kg: kg.KnowledgeGraph, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_kg.save(tmp_path_factory.mktemp("kg") / "kg")


# ------------------------------------------------------------------ kg.load / open / save


@pytest.mark.parametrize("bad", [5, b"tests/fixtures/tiny.ttl", 1.5])
def test_kg_load_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match="path or a list of paths"):
        kg.load(bad)  # type: ignore[arg-type]


def test_kg_load_of_a_compiled_folder_says_to_open_it(saved_kg: Path) -> None:
    for given in (saved_kg, [str(saved_kg)]):
        with pytest.raises(KGLoadError, match=r"compiled KG folder.*kg\.open"):
            kg.load(given)  # type: ignore[arg-type]


def test_kg_open_of_a_triples_file_says_to_load_it(tiny_ttl: Path) -> None:
    with pytest.raises(KGStoreError, match=r"is a file.*kg\.load"):
        kg.open(tiny_ttl)


@pytest.mark.parametrize("bad", [None, 3, ["out/kg"]])
def test_kg_open_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match=r"compiled KG folder to open is a path.*not"):
        kg.open(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 5, ["out/kg"]])
def test_graph_save_refuses_what_is_not_a_path(tiny_kg: kg.KnowledgeGraph, bad: object) -> None:
    with pytest.raises(TypeError, match="folder to save the KG to is a path"):
        tiny_kg.save(bad)  # type: ignore[arg-type]


def test_graph_save_never_replaces_a_folder_of_other_files(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds other files.*notes\.txt"):
        tiny_kg.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_graph_save_replaces_an_older_compiled_kg_and_fills_an_empty_folder(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    tiny_kg.save(tmp_path / "kg")
    tiny_kg.save(tmp_path / "kg")  # a compiled KG is replaced, as the CLI's -o does
    (tmp_path / "empty").mkdir()
    tiny_kg.save(tmp_path / "empty")
    assert kg.open(tmp_path / "empty").fingerprint == tiny_kg.fingerprint


def test_kg_extend_refuses_a_path_or_a_graph_in_the_wrong_place(
    tiny_kg: kg.KnowledgeGraph, saved_kg: Path, tiny_ttl: Path
) -> None:
    with pytest.raises(TypeError, match=r"not the path .*kg\.open"):
        kg.extend(str(saved_kg), tiny_ttl)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes a compiled graph.*compiled is None .*triple store"):
        kg.extend(None, tiny_ttl)  # what graph.compiled is for a store  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="adds triples files"):
        kg.extend(tiny_kg, tiny_kg)  # type: ignore[arg-type]


def test_kg_extend_triples_with_one_triple_says_to_pass_a_list(
    tiny_kg: kg.KnowledgeGraph,
) -> None:
    triple = (EX + "x", EX + "hasSymptom", EX + "fever")
    with pytest.raises(KGLoadError, match=r"list of .* rows.*pass \["):
        kg.extend_triples(tiny_kg, triple)  # type: ignore[arg-type]


# ------------------------------------------------------------------ ids and sizes


@pytest.mark.parametrize(
    "method",
    [
        "iri",
        "label",
        "types_of",
        "aliases_of",
        "names",
        "description",
        "text",
        "attributes_of",
        "degree",
        "neighbors_of",
    ],
)
def test_entity_ids_out_of_range_or_negative_are_refused(
    tiny_kg: kg.KnowledgeGraph, method: str
) -> None:
    look = getattr(tiny_kg, method)
    n = tiny_kg.num_entities
    for bad in (n, n + 5, -1, -n - 1):  # -1 used to answer the last entity's
        with pytest.raises(EntityNotFoundError, match=f"out of range.*{n} entities"):
            look(bad)
    assert look(np.int64(0)) == look(0)


@pytest.mark.parametrize("bad", ["flu", 1.5, None, [1]])
def test_entity_ids_of_the_wrong_type_are_a_type_error_with_the_fix(
    tiny_kg: kg.KnowledgeGraph, bad: object
) -> None:
    for method in ("iri", "label", "types_of"):
        with pytest.raises(TypeError, match="entity ids are ints") as e:
            getattr(tiny_kg, method)(bad)
        if isinstance(bad, str):
            assert "graph.resolve('flu')" in str(e.value)


def test_paths_subgraph_and_search_sizes_are_checked(tiny_kg: kg.KnowledgeGraph) -> None:
    flu = tiny_kg.resolve("flu")
    with pytest.raises(TypeError, match="k must be an int"):
        tiny_kg.paths(flu, 1, k="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_hops must be at least 1 \(got 0\)"):
        tiny_kg.paths(flu, 1, max_hops=0)
    with pytest.raises(TypeError, match="hops must be an int"):
        tiny_kg.subgraph([flu], hops="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"seeds are a list of entity ids.*pass \[3\]"):
        tiny_kg.subgraph(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"limit must be at least 0 \(got -1\)"):
        tiny_kg.search("flu", limit=-1)  # used to drop the last match silently
    with pytest.raises(TypeError, match="limit must be an int"):
        tiny_kg.search("flu", limit="3")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [5, None, ["flu"], b"flu"])
def test_search_and_entity_id_take_strings(tiny_kg: kg.KnowledgeGraph, bad: object) -> None:
    with pytest.raises(TypeError, match="search takes a string"):
        tiny_kg.search(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="entity_id takes a string"):
        tiny_kg.entity_id(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ nlp.linker.from_kg


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


# ------------------------------------------------------------------ fusion.config.load_config

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


# ------------------------------------------------------------------ Predictor and Prediction


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


# ------------------------------------------------------------------ outputs that would replace a user's folder


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


# ------------------------------------------------------------------ relations, triples, paths


def test_relation_ids_out_of_range_are_refused_not_wrapped(tiny_kg: kg.KnowledgeGraph) -> None:
    R = tiny_kg.num_relations
    assert tiny_kg.relation_label(R) == "~" + tiny_kg.relation_label(0)  # an inverse: valid
    for bad in (2 * R, 99, -1):  # used to answer relation bad % R
        with pytest.raises(EntityNotFoundError, match=f"relation id {bad} is out of range"):
            tiny_kg.relation_label(bad)
        with pytest.raises(EntityNotFoundError, match="out of range"):
            tiny_kg.relation_iri(bad)
    with pytest.raises(TypeError, match=r"relation ids are ints.*graph\.relation_id"):
        tiny_kg.relation_iri("hasSymptom")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="relation_id takes a string"):
        tiny_kg.relation_id(0)  # type: ignore[arg-type]


def test_has_triple_checks_its_ids(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(EntityNotFoundError, match="entity id 99 is out of range"):
        tiny_kg.has_triple(99, 0, 1)
    with pytest.raises(EntityNotFoundError, match="relation id 7 is out of range"):
        tiny_kg.has_triple(0, 7, 1)


def test_a_path_is_read_with_a_graph(tiny_kg: kg.KnowledgeGraph) -> None:
    path = tiny_kg.paths(tiny_kg.resolve("flu"), tiny_kg.resolve("fever"), k=1)[0]
    for bad in (None, "flu", str(FIXTURES / "tiny.ttl")):
        with pytest.raises(TypeError, match=r"read with the graph that found it"):
            path.text(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"read with the graph that found it"):
            path.describe(bad)  # type: ignore[arg-type]


def test_id_map_refuses_what_is_not_a_compiled_graph(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(TypeError, match=r"kg\.id_map takes a compiled graph"):
        kg.id_map(tiny_kg, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"kg\.id_map takes a compiled graph, not the path"):
        kg.id_map("out/kg", tiny_kg)  # type: ignore[arg-type]


def test_kg_entities_finds_the_spans_under_a_custom_spans_key(tiny_kg: kg.KnowledgeGraph) -> None:
    doc = from_kg(tiny_kg, spans_key="links")("I have a fever and a cough")
    assert [s.kb_id_ for s in doc._.kg_entities] == [EX + "fever", EX + "cough"]  # was []
    assert [s.text for s in doc.spans["links"]] == ["fever", "cough"]


def test_kg_load_refuses_settings_of_the_wrong_type(tiny_ttl: Path) -> None:
    with pytest.raises(TypeError, match=r"config is a kg\.KGConfig, not dict.*from_dict"):
        kg.load(tiny_ttl, config={"label_predicates": [EX + "name"]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"limits is a kg\.guards\.ReadLimits"):
        kg.load(tiny_ttl, limits=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress is a function"):
        kg.load(tiny_ttl, progress=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 5])
def test_alias_table_load_refuses_what_is_not_a_path(bad: object) -> None:
    with pytest.raises(TypeError, match="alias table is a path"):
        AliasTable.load(bad)  # type: ignore[arg-type]


def test_a_store_graph_checks_ids_and_names_as_a_compiled_one_does(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    store = StoreGraph.connect(oxigraph_store([tiny_ttl], tmp_path))
    flu = store.resolve("flu")
    assert store.label(flu) == "Influenza"
    with pytest.raises(TypeError, match=r"entity ids are ints.*graph\.resolve\('flu'\)"):
        store.iri("flu")  # type: ignore[arg-type]
    with pytest.raises(EntityNotFoundError, match="entity id -1"):
        store.iri(-1)
    with pytest.raises(EntityNotFoundError, match="relation id 99 is out of range"):
        store.relation_label(99)  # used to wrap modulo the relation count
    with pytest.raises(TypeError, match="entity_id takes a string"):
        store.entity_id(5)  # type: ignore[arg-type]  # used to intern 5 as an IRI
    with pytest.raises(TypeError, match="search takes a string"):
        store.search(None)  # type: ignore[arg-type]
    with pytest.raises(KGReadOnlyError, match="triple store"):
        kg.extend_triples(store, [(EX + "x", EX + "hasSymptom", EX + "fever")])  # type: ignore[arg-type]


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
