"""Extending a compiled graph: exact replay, new files, new rows, id maps and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kg
from kg import vocab
from kg.extend import builder_from_graph, extend, extend_triples, id_map
from kg.graph import ARRAY_FIELDS, STRING_FIELDS

from .conftest import EX, FIXTURES

RDFS = "http://www.w3.org/2000/01/rdf-schema#"

# Blank nodes, an entity named only by an alias, two descriptions, a language-tagged and a typed
# attribute, a label in a rejected language and an isolated entity.
CORNERS_TTL = """\
@prefix ex: <http://example.org/c/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:a a ex:Thing ; rdfs:label "Alpha"@en , "alpha"@en-GB , "Zed" , "Alfa"@it ;
    skos:prefLabel "The alpha"@en ; skos:altLabel "A" ;
    rdfs:comment "First text." ; skos:definition "Second text."@en ;
    ex:note "hello"@en , "  spaced  " ; ex:size "3"^^xsd:integer ;
    ex:p [ ex:q ex:c ] , _:x .
_:x ex:q ex:d ; rdfs:label "anonymous" .
ex:b skos:altLabel "only an alias" , "another alias" .
ex:lonely rdfs:label "Lonely" .
"""

CONFIGS = {
    "default": kg.KGConfig(),
    "type-edges": kg.KGConfig(type_edges=True),
    "english-only": kg.KGConfig(languages=("en",)),
    "every-language": kg.KGConfig(languages=()),
    "no-alias-predicates": kg.KGConfig(alias_predicates=()),
    "one-label-predicate": kg.KGConfig(alias_predicates=(), label_predicates=(vocab.RDFS_LABEL,)),
    "one-label-predicate-one-language": kg.KGConfig(
        alias_predicates=(), label_predicates=(vocab.RDFS_LABEL,), languages=("en",)
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _triple_iris(graph: kg.KnowledgeGraph) -> set[tuple[str, str, str]]:
    return {
        (graph.iri(t.subject), graph.relation_iri(t.relation), graph.iri(t.object))
        for t in graph.triples()
    }


def _snapshot(graph: kg.KnowledgeGraph) -> dict[str, bytes]:
    """Copies of every array and string table, to prove a graph was not modified."""
    out = {name: getattr(graph, name).tobytes() for name in ARRAY_FIELDS}
    for name in STRING_FIELDS:
        table = getattr(graph, name)
        out[name] = table.blob.tobytes() + table.offsets.tobytes()
    return out


@pytest.fixture
def corners_ttl(tmp_path: Path) -> Path:
    return _write(tmp_path / "corners.ttl", CORNERS_TTL)


@pytest.fixture
def measles_nt(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "measles.nt",
        f'<{EX}measles> <{RDFS}label> "Measles" .\n'
        f"<{EX}measles> <{vocab.RDF_TYPE}> <{EX}Disease> .\n"
        f"<{EX}measles> <{EX}hasSymptom> <{EX}fever> .\n"
        f"<{EX}measles> <{EX}hasSymptom> <{EX}rash> .\n"
        f'<{EX}rash> <{RDFS}label> "rash" .\n',
    )


# ----- replay -----


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
@pytest.mark.parametrize("name", ["tiny.ttl", "linker.ttl", "corners.ttl"])
def test_builder_from_graph_round_trips_the_fingerprint(
    name: str, config: kg.KGConfig, corners_ttl: Path
) -> None:
    path = corners_ttl if name == "corners.ttl" else FIXTURES / name
    graph = kg.load(path, config=config)
    rebuilt = builder_from_graph(graph).build(graph.sources)
    assert rebuilt.fingerprint == graph.fingerprint
    assert rebuilt.sources == graph.sources


def test_builder_from_graph_round_trips_a_tsv_graph_with_relation_names(tmp_path: Path) -> None:
    tsv = _write(
        tmp_path / "facts.tsv",
        "head\trelation\ttail\nCommon Cold\thas symptom\tsore  throat\nFlu\tcaused by\tvirus\n",
    )
    graph = kg.load(tsv)
    rebuilt = builder_from_graph(graph).build(graph.sources)
    assert rebuilt.fingerprint == graph.fingerprint
    assert [rebuilt.relation_label(r) for r in range(rebuilt.num_relations)] == [
        "caused by",
        "has symptom",
    ]


def test_builder_from_graph_round_trips_a_reopened_graph(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    reopened = kg.open(tiny_kg.save(tmp_path / "compiled"))
    assert builder_from_graph(reopened).build().fingerprint == tiny_kg.fingerprint


def test_builder_from_graph_keeps_isolated_entities(tiny_kg: kg.KnowledgeGraph) -> None:
    headache = tiny_kg.entity_id(EX + "headache")
    assert tiny_kg.degree(headache) == 0  # typed and labelled, but on no edge
    rebuilt = builder_from_graph(tiny_kg).build()
    assert rebuilt.label(rebuilt.entity_id(EX + "headache")) == "headache"


# ----- extend from files -----


def test_extend_adds_an_entity_its_label_type_and_triples(
    tiny_kg: kg.KnowledgeGraph, measles_nt: Path
) -> None:
    grown = extend(tiny_kg, measles_nt)
    measles = grown.entity_id(EX + "measles")
    assert grown.label(measles) == "Measles"
    assert [grown.iri(t) for t in grown.types_of(measles)] == [EX + "Disease"]
    symptom = grown.relation_id(EX + "hasSymptom")
    assert grown.has_triple(measles, symptom, grown.entity_id(EX + "fever"))
    assert grown.label(grown.entity_id(EX + "rash")) == "rash"
    assert _triple_iris(tiny_kg) < _triple_iris(grown)
    assert grown.num_triples == tiny_kg.num_triples + 2
    assert grown.num_entities == tiny_kg.num_entities + 2
    assert grown.sources == ["tiny.ttl", "measles.nt"]
    flu = grown.entity_id(EX + "flu")  # old literals survive
    assert grown.aliases_of(flu) == ["Influenza", "flu"]
    assert grown.description(flu) == "A viral infection of the airways."


def test_extend_equals_loading_every_file_at_once(
    tiny_ttl: Path, tiny_kg: kg.KnowledgeGraph, measles_nt: Path
) -> None:
    assert extend(tiny_kg, measles_nt).fingerprint == kg.load([tiny_ttl, measles_nt]).fingerprint


def test_extend_keeps_blank_nodes_of_each_file_apart(corners_ttl: Path, tmp_path: Path) -> None:
    more = _write(tmp_path / "more.ttl", "@prefix ex: <http://example.org/c/> .\nex:e ex:p [] .\n")
    graph = kg.load(corners_ttl)
    grown = extend(graph, more)
    assert grown.num_entities == graph.num_entities + 2  # ex:e and a fresh blank node
    assert grown.fingerprint == kg.load([corners_ttl, more]).fingerprint
    again = extend(grown, more)  # the same file twice: its blank node is another node
    assert again.num_entities == grown.num_entities + 1


def test_extend_picks_an_unused_blank_node_tag(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.nt", "<http://e/a> <http://e/p> _:x .\n")
    graph = extend_triples(kg.load(old), [("_:f1b0", "http://e/p", "http://e/b")])
    new = _write(tmp_path / "new.nt", "<http://e/c> <http://e/p> _:y .\n")
    grown = extend(graph, new)  # "f1" is taken by the row above: the file gets "f2"
    assert grown.num_entities == graph.num_entities + 2
    assert grown.has_entity("_:f2b0")


def test_extend_keeps_the_old_display_label(tiny_kg: kg.KnowledgeGraph, tmp_path: Path) -> None:
    extra = _write(tmp_path / "extra.nt", f'<{EX}flu> <{RDFS}label> "Another name" .\n')
    grown = extend(tiny_kg, extra)
    flu = grown.entity_id(EX + "flu")
    assert grown.label(flu) == "Influenza"
    assert grown.aliases_of(flu) == ["Influenza", "Another name", "flu"]


def test_id_map_follows_entities_by_iri(tiny_kg: kg.KnowledgeGraph, measles_nt: Path) -> None:
    grown = extend(tiny_kg, measles_nt)
    mapping = id_map(tiny_kg, grown)
    assert mapping.dtype == np.int64
    assert mapping.shape == (tiny_kg.num_entities,)
    assert [grown.iri(j) for j in mapping.tolist()] == list(tiny_kg.entities)
    assert not np.array_equal(mapping, np.arange(tiny_kg.num_entities))  # ids did shift
    back = id_map(grown, tiny_kg)
    assert back[grown.entity_id(EX + "measles")] == -1
    assert (back[mapping] == np.arange(tiny_kg.num_entities)).all()


def test_extend_creates_paths_that_did_not_exist(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    headache, flu = tiny_kg.entity_id(EX + "headache"), tiny_kg.entity_id(EX + "flu")
    assert tiny_kg.paths(headache, flu) == []
    extra = _write(
        tmp_path / "migraine.nt",
        f"<{EX}migraine> <{EX}hasSymptom> <{EX}headache> .\n"
        f"<{EX}migraine> <{EX}hasSymptom> <{EX}fever> .\n",
    )
    grown = extend(tiny_kg, extra)
    headache, flu = grown.entity_id(EX + "headache"), grown.entity_id(EX + "flu")
    assert [grown.iri(t) for t in grown.types_of(headache)] == [EX + "Symptom"]
    paths = grown.paths(headache, flu, max_hops=3)
    assert paths
    assert [grown.iri(e) for e in paths[0].entities] == [
        EX + "headache",
        EX + "migraine",
        EX + "fever",
        EX + "flu",
    ]


def test_extend_reads_several_files_and_tsv(tiny_kg: kg.KnowledgeGraph, tmp_path: Path) -> None:
    nt = _write(tmp_path / "a.nt", f"<{EX}flu> <{EX}hasSymptom> <{EX}headache> .\n")
    tsv = _write(tmp_path / "b.tsv", "Flu\ttreated by\trest\n")
    grown = extend(tiny_kg, [nt, tsv])
    assert grown.sources == ["tiny.ttl", "a.nt", "b.tsv"]
    assert grown.num_triples == tiny_kg.num_triples + 2
    assert grown.relation_label(grown.relation_id("http://kgfuse.local/relation/treated_by")) == (
        "treated by"
    )


# ----- bad files -----


def _extend_error(graph: kg.KnowledgeGraph, paths: object, **kwargs: str) -> kg.KGLoadError:
    with pytest.raises(kg.KGLoadError) as info:
        extend(graph, paths, **kwargs)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_extend_bad_file_names_file_and_line_and_leaves_the_graph_untouched(
    tiny_ttl: Path, tmp_path: Path, parser: str
) -> None:
    graph = kg.load(tiny_ttl)
    before, fingerprint = _snapshot(graph), graph.fingerprint
    bad = _write(tmp_path / "bad.nt", f"<{EX}a> <{EX}b> <{EX}c> .\n<{EX}a> <{EX}b> oops .\n")
    err = _extend_error(graph, bad, parser=parser)
    assert err.path == str(bad)
    assert err.line == 2
    assert str(err).startswith(f"{bad}:2: syntax error")
    assert _snapshot(graph) == before
    assert graph.compute_fingerprint() == fingerprint
    assert graph.sources == ["tiny.ttl"]


def test_extend_refuses_missing_empty_and_tripleless_files(
    tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.nt"
    assert "file not found" in str(_extend_error(tiny_kg, missing))
    assert "not a regular file" in str(_extend_error(tiny_kg, tmp_path))
    empty = _write(tmp_path / "empty.nt", "")
    assert "empty" in str(_extend_error(tiny_kg, empty))
    comments = _write(tmp_path / "comments.ttl", "# nothing here\n")
    err = _extend_error(tiny_kg, comments)
    assert err.path == str(comments) and "no triples" in str(err)
    assert "no triples files" in str(_extend_error(tiny_kg, []))
    odd = _write(tmp_path / "facts.xlsx", "x")
    assert ".xlsx" in str(_extend_error(tiny_kg, odd))
    good = _write(tmp_path / "good.nt", f"<{EX}a> <{EX}b> <{EX}c> .\n")
    assert "unknown parser" in str(_extend_error(tiny_kg, good, parser="nope"))


# ----- extend from rows -----


def test_extend_triples_routes_literals_and_iris(tiny_kg: kg.KnowledgeGraph) -> None:
    grown = extend_triples(
        tiny_kg,
        [
            (EX + "measles", RDFS + "label", "Measles"),
            (EX + "measles", vocab.RDF_TYPE, EX + "Disease"),
            (f"<{EX}measles>", f"<{EX}hasSymptom>", f"<{EX}fever>"),
            (EX + "measles", EX + "hasSymptom", EX + "rash"),
            (EX + "measles", RDFS + "comment", "A contagious viral disease."),
            (EX + "measles", EX + "homepage", "see http://example.org"),
            (EX + "measles", EX + "severity", "4"),
        ],
    )
    measles = grown.entity_id(EX + "measles")
    assert grown.label(measles) == "Measles"
    assert grown.description(measles) == "A contagious viral disease."
    assert [grown.iri(t) for t in grown.types_of(measles)] == [EX + "Disease"]
    assert grown.attributes_of(measles) == [
        (EX + "homepage", "see http://example.org", vocab.XSD_STRING),
        (EX + "severity", "4", vocab.XSD_STRING),
    ]
    symptom = grown.relation_id(EX + "hasSymptom")
    for obj in ("fever", "rash"):
        assert grown.has_triple(measles, symptom, grown.entity_id(EX + obj))
    assert grown.num_triples == tiny_kg.num_triples + 2
    assert grown.sources == tiny_kg.sources
    assert _triple_iris(tiny_kg) < _triple_iris(grown)


def test_extend_triples_equals_a_file_with_the_same_facts(
    tiny_ttl: Path, tiny_kg: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    rows = [(EX + "flu", EX + "hasSymptom", EX + "headache"), (EX + "x", RDFS + "label", "X")]
    nt = _write(
        tmp_path / "rows.nt",
        f'<{EX}flu> <{EX}hasSymptom> <{EX}headache> .\n<{EX}x> <{RDFS}label> "X" .\n',
    )
    assert extend_triples(tiny_kg, rows).fingerprint == kg.load([tiny_ttl, nt]).fingerprint


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("", EX + "p", EX + "o"), "subject"),
        ((EX + "s", "has symptom", EX + "o"), "predicate"),
        ((EX + "s", EX + "p", "<http://e/a b>"), "object"),
        ((EX + "s", EX + "p", "http://e/a b"), "object"),
        ((EX + "s", "<>", "x"), "predicate"),
        ((EX + "s", EX + "p"), "three strings"),
        ((EX + "s", EX + "p", 3), "three strings"),
        ("abc", "three strings"),
    ],
)
def test_extend_triples_bad_row_is_named(
    tiny_kg: kg.KnowledgeGraph, row: object, expected: str
) -> None:
    before = _snapshot(tiny_kg)
    good = (EX + "a", EX + "b", EX + "c")
    with pytest.raises(kg.KGLoadError) as info:
        extend_triples(tiny_kg, [good, row])  # type: ignore[list-item]
    message = str(info.value)
    assert message.startswith(f"row 1 {row!r}: ")
    assert expected in message
    assert _snapshot(tiny_kg) == before


def test_extend_triples_without_rows_is_refused(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.KGLoadError, match="no triples given"):
        extend_triples(tiny_kg, [])
