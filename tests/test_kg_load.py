"""Loading: every syntax, delimited files, literals, blank nodes, and every kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import rdflib

import kg
from kg import vocab

from .conftest import EX

SYNTAXES = {  # rdflib serializer name -> file extension
    "nt": "nt",
    "nquads": "nq",
    "trig": "trig",
    "n3": "n3",
    "json-ld": "jsonld",
    "xml": "rdf",
    "turtle": "ttl",
}


@pytest.fixture(scope="module")
def tiny_in_every_syntax(
    tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny graph re-serialized by rdflib in each syntax (quads into a named graph)."""
    out = tmp_path_factory.mktemp("syntaxes")
    graph = rdflib.Graph().parse(tiny_ttl)
    dataset = rdflib.Dataset()
    named = dataset.graph(rdflib.URIRef("http://example.org/graphs/tiny"))
    for t in graph:
        named.add(t)
    files = {}
    for fmt, ext in SYNTAXES.items():
        path = out / f"tiny.{ext}"
        source = dataset if fmt in ("nquads", "trig") else graph
        source.serialize(destination=str(path), format=fmt, encoding="utf-8")
        files[ext] = path
    gz = out / "tiny.nt.gz"
    gz.write_bytes(gzip.compress(files["nt"].read_bytes()))
    files["nt.gz"] = gz
    return files


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
@pytest.mark.parametrize("ext", [*SYNTAXES.values(), "nt.gz"])
def test_load_every_syntax_compiles_to_the_same_index(
    tiny_kg: kg.KnowledgeGraph, tiny_in_every_syntax: dict[str, Path], ext: str, parser: str
) -> None:
    graph = kg.load(tiny_in_every_syntax[ext], parser=parser)
    assert graph.fingerprint == tiny_kg.fingerprint
    assert list(graph.entities) == list(tiny_kg.entities)
    assert np.array_equal(graph.neighbors, tiny_kg.neighbors)


def test_load_explicit_format_overrides_extension(tiny_ttl: Path, tmp_path: Path) -> None:
    odd = tmp_path / "triples.data"
    odd.write_bytes(tiny_ttl.read_bytes())
    assert kg.load(odd, format="turtle").num_triples == kg.load(tiny_ttl).num_triples


def test_load_compiles_labels_aliases_descriptions_types_attributes(
    tiny_kg: kg.KnowledgeGraph,
) -> None:
    flu = tiny_kg.entity_id(EX + "flu")
    assert tiny_kg.label(flu) == "Influenza"  # the English label wins over "Grippe"@fr
    assert tiny_kg.aliases_of(flu) == ["Influenza", "flu"]  # French dropped by languages=("en", "")
    assert tiny_kg.description(flu) == "A viral infection of the airways."
    assert tiny_kg.text(flu) == "Influenza. A viral infection of the airways."
    assert [tiny_kg.iri(t) for t in tiny_kg.types_of(flu)] == [EX + "Disease"]
    fever = tiny_kg.entity_id(EX + "fever")
    assert tiny_kg.attributes_of(fever) == [(EX + "severity", "3", vocab.XSD + "integer")]
    # literals and types are not edges: fever touches flu and covid only
    assert sorted(tiny_kg.iri(n.node) for n in tiny_kg.neighbors_of(fever)) == [
        EX + "covid",
        EX + "flu",
    ]


def test_load_csr_lists_each_triple_with_its_inverse(tiny_kg: kg.KnowledgeGraph) -> None:
    flu, fever = tiny_kg.entity_id(EX + "flu"), tiny_kg.entity_id(EX + "fever")
    has_symptom = tiny_kg.relation_id(EX + "hasSymptom")
    assert kg.Neighbor(has_symptom, fever, True) in tiny_kg.neighbors_of(flu)
    assert kg.Neighbor(has_symptom, flu, False) in tiny_kg.neighbors_of(fever)
    assert tiny_kg.num_triples == len(list(tiny_kg.triples())) == 11
    assert tiny_kg.relation_label(has_symptom) == "has symptom"  # from the predicate's own label
    assert tiny_kg.relation_label(tiny_kg.relation_id(EX + "causedBy")) == "caused by"


def test_load_type_edges_are_optional(tiny_ttl: Path) -> None:
    with_types = kg.load(tiny_ttl, config=kg.KGConfig(type_edges=True))
    assert with_types.has_entity(EX + "Disease")
    assert with_types.num_triples == 11 + 14  # one rdf:type edge per typed entity


def test_load_merges_several_files_and_drops_duplicate_triples(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.nt"
    extra.write_text(
        f"<{EX}flu> <{EX}hasSymptom> <{EX}headache> .\n"
        f"<{EX}flu> <{EX}hasSymptom> <{EX}fever> .\n"  # already in tiny.ttl
    )
    merged = kg.load([tiny_ttl, extra])
    assert merged.num_triples == 12
    assert merged.sources == ["tiny.ttl", "extra.nt"]


def test_load_blank_nodes_are_entities_kept_apart_per_file(tmp_path: Path) -> None:
    ttl = tmp_path / "b.ttl"
    ttl.write_text(
        "@prefix ex: <http://e/> .\nex:a ex:p [ ex:q ex:c ] .\nex:a ex:p _:x .\n_:x ex:q ex:d .\n"
    )
    once = kg.load(ttl)
    twice = kg.load([ttl, ttl])
    assert once.num_entities == 5  # a, c, d and two blank nodes
    assert twice.num_entities == 7  # the second file's blank nodes are other nodes
    assert kg.load(ttl).fingerprint == once.fingerprint  # renumbering makes them deterministic


def test_load_tsv_names_become_iris_under_the_base_and_keep_labels(tmp_path: Path) -> None:
    tsv = tmp_path / "facts.tsv"
    tsv.write_text(
        "head\trelation\ttail\nCommon Cold\thas_symptom\tsore  throat\n\nFlu\thas_symptom\tfever\n"
    )
    graph = kg.load(tsv, config=kg.KGConfig(base_iri="http://my.org/kb/"))
    cold = graph.entity_id("http://my.org/kb/entity/Common_Cold")
    assert graph.label(cold) == "Common Cold"
    assert graph.label(graph.resolve("sore throat")) == "sore  throat".replace("  ", " ")
    assert graph.relation_iri(0) == "http://my.org/kb/relation/has_symptom"
    assert graph.relation_label(0) == "has_symptom"
    assert graph.num_triples == 2


def test_load_csv_without_header_and_with_iri_cells(tmp_path: Path) -> None:
    csv_file = tmp_path / "facts.csv"
    csv_file.write_text('"Smith, John",knows,<http://x.org/jane>\n')
    graph = kg.load(csv_file)
    assert graph.has_entity("http://x.org/jane")
    assert graph.label(graph.resolve("Smith, John")) == "Smith, John"


# ----- bad input -----


def _error(paths, **kwargs) -> kg.KGLoadError:  # type: ignore[no-untyped-def]
    with pytest.raises(kg.KGLoadError) as info:
        kg.load(paths, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("bad.ttl", "@prefix ex: <http://e/> .\nex:a ex:b ex:c ;\n  ex:d .\n", 3),
        ("bad.nt", "<http://a> <http://b> <http://c> .\n<http://a> <http://b> oops .\n", 2),
        ("bad.nq", "<http://a> <http://b> <http://c> <http://g> .\n<http://a> <http://b> .\n", 2),
        (
            "bad.rdf",
            '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n<rdf:Description>\n</rdf:RDF>\n',
            4,
        ),
        ("bad.jsonld", '{"@id": "http://a",\n "http://b": [\n}', 3),
    ],
)
def test_load_syntax_error_names_file_line_and_expectation(
    tmp_path: Path, name: str, content: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(content)
    err = _error(path)
    assert err.path == str(path)
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}: syntax error")


def test_load_syntax_error_through_rdflib_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.nt"
    path.write_text("<http://a> <http://b> <http://c> .\n<http://a> <http://b> oops .\n")
    err = _error(path, parser="rdflib")
    assert err.line == 2


def test_load_unknown_extension_lists_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "triples.xlsx"
    path.write_text("x")
    message = str(_error(path))
    assert ".xlsx" in message
    for ext in (".ttl", ".nt", ".nq", ".trig", ".jsonld", ".rdf", ".tsv", ".csv"):
        assert ext in message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.nt", ""),
        ("comments.nt", "# a comment\n\n   # another\n"),
        ("empty.ttl", ""),
        ("nothing.ttl", "@prefix ex: <http://e/> .\n# no triples\n"),
        ("header.tsv", "head\trelation\ttail\n"),
    ],
)
def test_load_file_without_triples_gives_an_empty_kg(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    graph = kg.load(path)
    assert (graph.num_entities, graph.num_relations, graph.num_triples) == (0, 0, 0)
    graph.save(tmp_path / "compiled")
    again = kg.open(tmp_path / "compiled")
    assert again.fingerprint == graph.fingerprint
    assert again.num_entities == 0 and again.search("anything") == []
    assert again.subgraph([]).num_nodes == 0
    with pytest.raises(kg.EntityNotFoundError):
        again.subgraph([0])


def test_load_empty_file_beside_others_adds_nothing(tmp_path: Path, tiny_ttl: Path) -> None:
    empty = tmp_path / "empty.nt"
    empty.write_text("")
    assert kg.load([tiny_ttl, empty]).fingerprint == kg.load(tiny_ttl).fingerprint


def test_cli_load_of_an_empty_file_says_the_kg_is_empty(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kg.cli import app

    path = tmp_path / "empty.nt"
    path.write_text("# nothing yet\n")
    result = CliRunner().invoke(app, ["load", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "the KG is empty (0 triples)" in " ".join(result.output.split())
    assert kg.open(tmp_path / "out").num_triples == 0


def test_load_tsv_row_with_wrong_column_count_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "facts.tsv"
    path.write_text("a\tr\tb\nc\tr\n")
    err = _error(path)
    assert (err.path, err.line) == (str(path), 2)
    assert "expected 3 columns" in str(err) and "found 2" in str(err)


def test_load_tsv_with_empty_cell_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "facts.tsv"
    path.write_text("a\tr\tb\nc\t\td\n")
    assert _error(path).line == 2


@pytest.mark.parametrize("name", ["latin1.ttl", "latin1.tsv"])
@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_load_non_utf8_file_is_a_clear_error(tmp_path: Path, name: str, parser: str) -> None:
    path = tmp_path / name
    if name.endswith(".ttl"):
        path.write_bytes(
            '<http://a> <http://b> "ok" .\n<http://a> <http://b> "café" .\n'.encode("latin-1")
        )
    else:
        path.write_bytes("a\tr\tb\ncafé\tr\tb\n".encode("latin-1"))
    err = _error(path, parser=parser)
    assert "not UTF-8" in str(err)
    assert err.line == 2


def test_load_missing_file_and_folder(tmp_path: Path) -> None:
    assert "file not found" in str(_error(tmp_path / "nope.ttl"))
    assert "not a regular file" in str(_error(tmp_path))
    assert "no triples files" in str(_error([]))


def test_load_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.nt.gz"
    path.write_bytes(gzip.compress(b"<http://a> <http://b> <http://c> .\n" * 100)[:40])
    assert "gzip" in str(_error(path))


def test_load_unknown_parser_or_format_is_refused(tiny_ttl: Path) -> None:
    assert "unknown parser" in str(_error(tiny_ttl, parser="jena"))
    assert "unknown format" in str(_error(tiny_ttl, format="excel"))


def test_config_rejects_bad_values_all_at_once() -> None:
    with pytest.raises(kg.KGFuseError) as info:
        kg.KGConfig(base_iri="kb", type_edges="yes")  # type: ignore[arg-type]
    assert "base_iri" in str(info.value) and "type_edges" in str(info.value)
    with pytest.raises(kg.KGFuseError, match="unknown KG config key"):
        kg.KGConfig.from_dict({"label_predicate": []})


def test_csr_packed_sort_equals_the_lexsort_fallback() -> None:
    from kg.compile import _csr_with_inverse

    rng = np.random.default_rng(0)
    n, r = 50, 4
    src, rel, dst = (rng.integers(0, k, 400) for k in (n, r, n))  # duplicates included
    packed = _csr_with_inverse(src, rel, dst, n, r, pack=True)
    fallback = _csr_with_inverse(src, rel, dst, n, r, pack=False)  # for ids too wide to pack
    for a, b in zip(packed, fallback, strict=True):
        assert np.array_equal(a, b)
    assert packed[0][-1] == 2 * len(
        {(int(s), int(p), int(o)) for s, p, o in zip(src, rel, dst, strict=True)}
    )


NAMES_TTL = """@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
ex:a rdfs:label "Zed" , "Alpha  beta"@en-GB ; skos:prefLabel "Pref" ;
    skos:altLabel "Alt" , "Pref" , "  " .
ex:b skos:altLabel "only alias" .
ex:c rdfs:label "Second" , "First" .
ex:d rdfs:label "x"@fr ; ex:p ex:a .
ex:e rdfs:label "Zed" , "Ze"@en .
"""


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_load_display_label_is_best_predicate_then_language_then_text(
    tmp_path: Path, parser: str
) -> None:
    path = tmp_path / "names.ttl"
    path.write_text(NAMES_TTL, encoding="utf-8")
    graph = kg.load(path, parser=parser)
    names = {
        iri.rsplit("/", 1)[1]: (graph.labels[i], graph.aliases_of(i))
        for i, iri in enumerate(graph.entities)
    }
    assert names == {
        "a": ("Pref", ["Pref", "Alpha beta", "Alt", "Zed"]),  # prefLabel first; spaces joined
        "b": ("", ["only alias"]),
        "c": ("First", ["First", "Second"]),  # same predicate and language: the smaller text
        "d": ("", []),  # French is not among the accepted languages
        "e": ("Ze", ["Ze", "Zed"]),  # English before no language tag
    }


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_load_refuses_an_n3_formula_instead_of_asserting_its_quoted_triples(
    tmp_path: Path, parser: str
) -> None:
    path = tmp_path / "rules.n3"
    path.write_text(
        "@prefix ex: <http://example.org/> .\nex:x ex:p ex:y .\n{ ex:a ex:p ex:b } ex:p ex:c .\n"
    )
    err = _error(path, parser=parser)
    assert err.path == str(path) and "N3 formulas" in str(err) and "as Turtle" in str(err)
    plain = tmp_path / "facts.n3"
    plain.write_text("@prefix ex: <http://example.org/> .\nex:x ex:p ex:y .\n")
    graph = kg.load(plain, parser=parser)
    assert graph.num_triples == 1
