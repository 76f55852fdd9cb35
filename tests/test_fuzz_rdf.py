"""Fuzzing the KG loaders: every RDF syntax through both parsers, and TSV/CSV triples.

Property (tests/fuzzing.py): `kg.load` of anything gives a graph or a `KGFuseError` with a
message, never another exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import kg
from kg.formats import FORMATS
from tests.fuzzing import CHAR, FRAGMENT, TEXT, encode, mutated, parses_or_refuses

EX = "http://example.org/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
TURTLE = f"""@prefix ex: <{EX}> .
@prefix rdfs: <{RDFS}> .
ex:a rdfs:label "A"@en , "Alpha" ; rdfs:comment \"\"\"first
letter\"\"\" ; ex:p ex:b , [ ex:q "1"^^<{XSD}integer> ; ex:r 2.5e3 ] .
ex:b ex:list ( ex:a "x" 2 true ) ; a ex:Letter .
"""
NTRIPLES = f"""<{EX}a> <{RDFS}label> "A\\u00e9"@en .
<{EX}a> <{EX}p> _:b0 .
_:b0 <{EX}q> "1"^^<{XSD}integer> .
<{EX}b> <{EX}p> <{EX}a> .
"""
NQUADS = NTRIPLES.replace(" .\n", f" <{EX}g> .\n")
TRIG = f"""@prefix ex: <{EX}> .
ex:g {{ ex:a ex:p ex:b ; <{RDFS}label> "A" . }}
{{ ex:b ex:p [ ex:q "x"@fr ] . }}
"""
N3 = TURTLE + "ex:a = ex:c .\nex:b <= ex:d .\n"  # a formula is refused (test_kg_load)
JSON_LD = f"""{{"@context": {{"ex": "{EX}", "label": "{RDFS}label"}},
 "@graph": [{{"@id": "ex:a", "label": ["A", {{"@value": "Alpha", "@language": "en"}}],
   "ex:p": {{"@id": "ex:b", "ex:q": 1, "ex:r": [1.5, true, null]}}}}]}}
"""
RDF_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:rdfs="{RDFS}"
         xmlns:ex="{EX}">
  <rdf:Description rdf:about="{EX}a">
    <rdfs:label xml:lang="en">A</rdfs:label>
    <ex:p><rdf:Description rdf:about="{EX}b"><ex:q rdf:datatype="{XSD}integer">1</ex:q></rdf:Description></ex:p>
    <ex:r rdf:parseType="Resource"><ex:s>x</ex:s></ex:r>
  </rdf:Description>
</rdf:RDF>
"""
SEEDS = {
    "turtle": TURTLE,
    "ntriples": NTRIPLES,
    "nquads": NQUADS,
    "trig": TRIG,
    "n3": N3,
    "json-ld": JSON_LD,
    "xml": RDF_XML,
}
RDF_FORMATS = list(SEEDS)
PARSERS = ["oxigraph", "rdflib"]


def load_bytes(folder: Path, fmt: str, data: bytes, parser: str = "oxigraph") -> object:
    """Write ``data`` as a file of format ``fmt`` and load it; the property's check."""
    path = folder / f"fuzz.{FORMATS[fmt][0]}"
    path.write_bytes(data)
    return parses_or_refuses(lambda: kg.load(path, parser=parser))


@pytest.mark.parametrize("fmt", RDF_FORMATS)
def test_rdf_seeds_load(tmp_path: Path, fmt: str) -> None:
    """The seeds the mutations start from are valid: mutants explore near real documents."""
    for parser in PARSERS:
        path = tmp_path / f"seed.{FORMATS[fmt][0]}"
        path.write_text(SEEDS[fmt], encoding="utf-8")
        assert kg.load(path, parser=parser).num_entities >= 2


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("fmt", RDF_FORMATS)
@given(data=st.data())
def test_mutated_rdf_loads_or_is_refused(
    tmp_path: Path, fmt: str, parser: str, data: st.DataObject
) -> None:
    text = data.draw(mutated(SEEDS[fmt]), label="document")
    load_bytes(tmp_path, fmt, encode(text), parser)


@pytest.mark.parametrize("fmt", RDF_FORMATS)
@given(raw=st.one_of(st.binary(min_size=1, max_size=200), st.text(CHAR, min_size=1).map(encode)))
def test_arbitrary_bytes_load_or_are_refused(tmp_path: Path, fmt: str, raw: bytes) -> None:
    for parser in PARSERS:
        load_bytes(tmp_path, fmt, raw, parser)


def _nested(fmt: str, depth: int) -> str:
    """A valid document of ``fmt`` nested ``depth`` deep (where the syntax nests)."""
    s, p, o = f"<{EX}s>", f"<{EX}p>", f"<{EX}o>"
    if fmt in ("turtle", "n3"):
        return f"{s} {p} " + f"[ {p} " * depth + o + " ]" * depth + " .\n"
    if fmt == "trig":
        return "{ " + f"{s} {p} " + "( " * depth + ")" * depth + " . }\n"
    if fmt == "json-ld":
        return f'{{"@id": "{EX}s", "{EX}p": ' * depth + f'{{"@id": "{EX}o"}}' + "}" * depth
    if fmt == "xml":
        head = f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:ex="{EX}">'
        body = "<rdf:Description><ex:p>" * depth + "</ex:p></rdf:Description>" * depth
        return head + body + "</rdf:RDF>"
    line = f"{s} {p} " + '"' + "x" * depth + '" .\n'  # N-Triples and N-Quads do not nest
    return line if fmt == "ntriples" else line.replace(" .\n", f" <{EX}g> .\n")


@pytest.mark.parametrize("depth", [1_000, 5_000])
@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("fmt", RDF_FORMATS)
def test_deep_nesting_loads_or_is_refused(
    tmp_path: Path, fmt: str, parser: str, depth: int
) -> None:
    load_bytes(tmp_path, fmt, _nested(fmt, depth).encode(), parser)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("number", ["1" + "0" * 5000, "1e999999", "-1E-999999", "9" * 4301])
def test_huge_numbers_load_or_are_refused(tmp_path: Path, parser: str, number: str) -> None:
    """oxigraph keeps them as text; rdflib refuses integers over Python's 4,300 digits."""
    turtle = f'<{EX}s> <{EX}n> {number} ; <{EX}t> "{number}"^^<{XSD}integer> .\n'
    loaded = load_bytes(tmp_path, "turtle", turtle.encode(), parser)
    assert loaded is not None or parser == "rdflib"
    jsonld = f'{{"@id": "{EX}s", "{EX}n": {number}}}'
    load_bytes(tmp_path, "json-ld", jsonld.encode(), parser)


ROW = st.lists(st.one_of(TEXT, FRAGMENT), min_size=0, max_size=5)


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
@given(rows=st.lists(ROW, min_size=1, max_size=6), header=st.booleans())
@example(rows=[["a", "r", "x" * 200_000]], header=False)  # longer than csv's field limit
@example(rows=[["a\x00", "r", "b"]], header=True)
def test_delimited_triples_load_or_are_refused(
    tmp_path: Path, fmt: str, rows: list[list[str]], header: bool
) -> None:
    sep = "\t" if fmt == "tsv" else ","
    lines = (["head", "relation", "tail"] if header else []) + [sep.join(r) for r in rows]
    load_bytes(tmp_path, fmt, encode("\n".join(lines) + "\n"))


@given(text=mutated('head,relation,tail\nflu,causes,fever\n"a, b",r,"c""d"\n'))
def test_mutated_csv_triples_load_or_are_refused(tmp_path: Path, text: str) -> None:
    load_bytes(tmp_path, "csv", encode(text))


@pytest.mark.parametrize(
    ("fmt", "document"),
    [
        ("ntriples", f"<{EX}a\\uD800> <{EX}p> <{EX}b> .\n"),
        ("turtle", f'<{EX}a> <{EX}p> "x\\uDFFF" .\n'),
        ("json-ld", f'{{"@id": "{EX}a", "{EX}p": "\\ud800"}}'),
    ],
    ids=["ntriples", "turtle", "json-ld"],
)
def test_lone_surrogate_escapes_are_refused_by_both_parsers(
    tmp_path: Path, fmt: str, document: str
) -> None:
    for parser in PARSERS:
        path = tmp_path / f"s.{FORMATS[fmt][0]}"
        path.write_text(document, encoding="utf-8")
        with pytest.raises(kg.KGLoadError):
            kg.load(path, parser=parser)


def test_extend_triples_refuses_a_lone_surrogate(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.KGLoadError, match="lone surrogate U\\+D800"):
        kg.extend_triples(tiny_kg, [(f"{EX}a", f"{RDFS}label", "x\ud800")])
