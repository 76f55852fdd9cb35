"""The kg Python API used carelessly: every bad argument is an error that names the problem and
the fix (a kgfuse error, or a TypeError / ValueError of our own wording), never an exception from
deep inside numpy or pathlib, a silent wrong answer, or a half-written output. The linker, config,
Predictor and output-folder cases are in tests/test_python_api_bad_inputs_fusion.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kg
from kg.errors import (
    EntityNotFoundError,
    KGLoadError,
    KGReadOnlyError,
    KGStoreError,
    OutputError,
)
from kg.store_graph import StoreGraph
from tests.conftest import FIXTURES, oxigraph_store

EX = "http://example.org/tiny/"


@pytest.fixture(scope="module")
def saved_kg(tiny_kg: kg.KnowledgeGraph, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_kg.save(tmp_path_factory.mktemp("kg") / "kg")


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


def test_kg_load_refuses_settings_of_the_wrong_type(tiny_ttl: Path) -> None:
    with pytest.raises(TypeError, match=r"config is a kg\.KGConfig, not dict.*from_dict"):
        kg.load(tiny_ttl, config={"label_predicates": [EX + "name"]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"limits is a kg\.guards\.ReadLimits"):
        kg.load(tiny_ttl, limits=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress is a function"):
        kg.load(tiny_ttl, progress=5)  # type: ignore[arg-type]


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
