"""The bulk N-Triples/Turtle reader (kg/fastparse.py) against pyoxigraph's path: a file it
accepts compiles to the same graph, and a file pyoxigraph refuses it never accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kg
import kg.fastparse as fastparse
import kg.parse as parse
from kg.fastparse import read_simple

XSD = "http://www.w3.org/2001/XMLSchema#"
LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"


def _slow(monkeypatch: pytest.MonkeyPatch, path: Path) -> kg.KnowledgeGraph | str:
    with monkeypatch.context() as m:
        m.setattr(parse, "FAST_FORMATS", ())
        return _outcome(path)


def _outcome(path: Path) -> kg.KnowledgeGraph | str:
    try:
        return kg.load(path)
    except kg.KGLoadError as e:
        return f"error: {e}"


def _same(fast: kg.KnowledgeGraph | str, slow: kg.KnowledgeGraph | str) -> None:
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
    else:
        assert fast.fingerprint == slow.fingerprint
        assert list(fast.entities) == list(slow.entities)
        assert sorted(fast.triples()) == sorted(slow.triples())


NTRIPLES = f"""# a comment line
<http://ex.org/a> <http://ex.org/p> <http://ex.org/b> .
<http://ex.org/a> {LABEL} "Alpha  one"@EN-gb .
<http://ex.org/a> <http://ex.org/size> "42"^^<{XSD}integer> .
_:x <http://ex.org/p> _:y .
_:y <http://ex.org/p> <http://ex.org/a> .
<http://ex.org/b> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/T> .
<http://ex.org/b> <http://www.w3.org/2000/01/rdf-schema#comment> "a \u00e9t\u00e9 thing" .

<urn:isbn:1> <http://ex.org/p> <http://ex.org:8080/c?q=1#frag> .
"""

TURTLE = f"""@prefix ex: <http://ex.org/> .
@prefix : <http://ex.org/default/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <{XSD}> .

# statements
ex:a ex:p ex:b , ex:c ;
\trdfs:label "Alpha" , "Alpha"@de ;
\tex:size 42 , -1.5 , true , "7"^^xsd:int ;
\ta ex:T ;
\t.
:x ex:p _:b1 .
_:b1 ex:p <http://ex.org/a> ; ex:q ex:a.b .
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.nt", NTRIPLES),
        ("a.ttl", TURTLE),
        # whole-line comments anywhere, indented or holding what looks like a statement
        ("c.nt", '  # indented, with a "quote\n<http://ex.org/a> <http://ex.org/p> _:b .\n# end\n'),
        ("c.nt", '<http://ex.org/a> <http://ex.org/p> "x # y" .\n\t#\n'),
        (
            "c.ttl",
            "@prefix ex: <http://ex.org/> .\n# a . b . c .\nex:a ex:p ex:b ;\n  # mid\n  ex:q 1 .\n",
        ),
    ],
)
def test_fastparse_reads_plain_files_as_pyoxigraph_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    fmt = "ntriples" if name.endswith(".nt") else "turtle"
    assert read_simple(path.read_bytes(), fmt, "f0") is not None, "the subset should take it"
    _same(_outcome(path), _slow(monkeypatch, path))


def test_fastparse_chunks_give_the_same_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        f"<http://ex.org/e{i % 37}> <http://ex.org/r{i % 3}> _:b{i % 11} ." for i in range(400)
    ]
    lines += [f'_:b{i} {LABEL} "blank {i}" .' for i in range(11)]
    path = tmp_path / "many.nt"
    path.write_text("\n".join(lines) + "\n")
    whole = kg.load(path)
    monkeypatch.setattr(fastparse, "CHUNK_BYTES", 500)
    assert read_simple(path.read_bytes(), "ntriples", "f0") is not None
    _same(kg.load(path), whole)
    _same(whole, _slow(monkeypatch, path))


@pytest.mark.parametrize(
    "text",
    [
        "<http://ex.org/a> <http://ex.org/p> <http://ex.org/b> . # after a statement\n",
        '<http://ex.org/a> <http://ex.org/p> """x""" .\n',
        '<http://ex.org/a> <http://ex.org/p> "x"""" .\n',
    ],
)
def test_fastparse_leaves_trailing_comments_and_long_strings_to_pyoxigraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    for name in ("t.nt", "t.ttl"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        fmt = "ntriples" if name.endswith(".nt") else "turtle"
        assert read_simple(path.read_bytes(), fmt, "f0") is None
        _same(_outcome(path), _slow(monkeypatch, path))


def test_fastparse_leaves_a_statement_longer_than_64_chunks_to_pyoxigraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.nt"
    path.write_text(
        f'<http://ex.org/a> {LABEL} "{"x" * 2000}" .\n<http://ex.org/a> {LABEL} "b" .\n'
    )
    whole = kg.load(path)
    monkeypatch.setattr(fastparse, "CHUNK_BYTES", 16)  # 64 chunks: 1,024 bytes
    assert read_simple(path.read_bytes(), "ntriples", "f0") is None
    _same(kg.load(path), whole)


@pytest.mark.parametrize(
    "line",
    [
        "<http://ex.org/a> <http://ex.org/p> <b> .",  # relative IRI
        "<http://ex.org/a> <http://ex.org/p> <http://ex.org/b#c#d> .",
        "<http://ex.org/a> <http://ex.org/p> <http://ex.org/%zz> .",
        "<http://ex.org/a> <http://ex.org/p> <http://h:x/> .",
        '<http://ex.org/a> <http://ex.org/p> "x"^^<http://www.w3.org/1999/02/22-rdf-syntax-ns#langString> .',
        "<http://ex.org/a> <http://ex.org/p> 42 .",  # Turtle only
        "<http://ex.org/a> <http://ex.org/p> <http://ex.org/b>",  # no dot
        "<http://ex.org/a> <http://ex.org/p>\n<http://ex.org/b> .",  # two lines
        "<http://ex.org/a> <http://ex.org/p>\n<http://ex.org/b> . <http://ex.org/a>"
        " <http://ex.org/p> <http://ex.org/c> .",  # as many newlines as statements, misplaced
        '<http://ex.org/a> <http://ex.org/p> "x\\"y" .',  # an escape
    ],
)
def test_fastparse_leaves_doubtful_lines_to_pyoxigraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    path = tmp_path / "odd.nt"
    path.write_text(line + "\n")
    assert read_simple(path.read_bytes(), "ntriples", "f0") is None
    _same(_outcome(path), _slow(monkeypatch, path))


# mostly valid pieces, with a few of each kind of doubtful one
_SCHEMES = ["http://ex.org/"] * 6 + ["urn:x:", "http://ex.org:80/", "http://u@h/", "x:/", "1a:", ""]
_CHARS = st.sampled_from(
    list("abcAZ09/#") * 12 + list("-._~!$&'()*+,;=:@/?#%é \"<>{}|^`") + ["%41"]
)
_IRI = st.builds(
    lambda scheme, local: f"<{scheme}{local}>",
    st.sampled_from(_SCHEMES),
    st.lists(_CHARS, max_size=5).map("".join),
)
_PNAME = st.sampled_from(["ex:a", "ex:b", "ex:", ":b", "ex:a.b", "ex:a.", "ex:-a", "zz:a"])
_BLANK = st.sampled_from(["_:b1", "_:b2", "_:b1", "_:b2", "_:x.y", "_:-a", "[]"])
_BODY = st.sampled_from(["", "ab", "a b", "é  x", "a\tb", "#.;,<>:"] * 3 + ["\\n", "\\u0041", '"'])
_SUFFIX = st.sampled_from(
    ["", "", "@en", "@EN-us", "@en--ltr", "@1x", f"^^<{XSD}integer>", "^^ex:dt", "^^<rel>"]
)
_LITERAL = st.builds(lambda body, suffix: f'"{body}"{suffix}', _BODY, _SUFFIX)
_NUMBER = st.sampled_from(["42", "-1.5", "1e3", "true", "+7", ".5"])
_SUBJECT = st.one_of(_IRI, _IRI, _IRI, _BLANK, _PNAME)
_PREDICATE = st.one_of(_IRI, _IRI, _IRI, _IRI, _PNAME, st.just("a"), _LITERAL)
_OBJECT = st.one_of(_IRI, _IRI, _BLANK, _PNAME, _LITERAL, _LITERAL, _NUMBER)
_SEP = st.sampled_from([" "] * 20 + ["\t", "  ", ""])
_END = st.sampled_from([" ."] * 20 + [" ;", " ,", ".", " . # note", "", " ; ."])
_STATEMENT = st.builds(
    lambda s, p, o, a, b, c, end: f"{s}{a}{p}{b}{o}{c}{end}",
    _SUBJECT,
    _PREDICATE,
    _OBJECT,
    _SEP,
    _SEP,
    _SEP,
    _END,
)
_HEADER = st.sampled_from(
    ["", "@prefix ex: <http://ex.org/> .\n", "@prefix : <http://d/> .\n@prefix ex: <http://e/> .\n"]
)


# and documents that are mostly right, so that the subset takes a fair share of them
_CLEAN_IRI = st.builds(
    lambda local: f"<http://ex.org/{local}>", st.text("abcAZ09/#?:~", min_size=1, max_size=4)
)
_CLEAN_TERM = {
    "s": st.one_of(_CLEAN_IRI, _CLEAN_IRI, st.sampled_from(["_:b1", "_:b2"])),
    "p": st.one_of(_CLEAN_IRI, _CLEAN_IRI),
    "o": st.one_of(
        _CLEAN_IRI,
        st.sampled_from(["_:b1", "_:b2"]),
        st.builds(
            lambda body, suffix: f'"{body}"{suffix}',
            st.text("ab é#.;<>", max_size=4),
            st.sampled_from(["", "@en", "@EN-us", f"^^<{XSD}integer>"]),
        ),
    ),
}
_TURTLE_ONLY = {
    "s": ["ex:a"],
    "p": ["a", "ex:p"],
    "o": ["ex:b", "42", "-1.5", "true", '"x"^^ex:dt'],
}


@st.composite
def _clean_document(draw: st.DrawFn, turtle: bool) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        terms = []
        for role in "spo":
            if turtle and draw(st.integers(0, 3)) == 0:
                terms.append(draw(st.sampled_from(_TURTLE_ONLY[role])))
            else:
                terms.append(draw(_CLEAN_TERM[role]))
        end = draw(st.sampled_from([" ."] * 6 + [" ;", " , <http://ex.org/z> .", " ; ."]))
        lines.append(" ".join(terms) + (end if turtle else " ."))
    header = "@prefix ex: <http://ex.org/> .\n" if turtle else ""
    return header + "\n".join(lines) + "\n"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(turtle=st.booleans(), data=st.data())
def test_fastparse_agrees_with_pyoxigraph_on_plain_documents(
    tmp_path_factory: pytest.TempPathFactory, turtle: bool, data: st.DataObject
) -> None:
    text = data.draw(_clean_document(turtle))
    path = tmp_path_factory.mktemp("clean") / ("doc.ttl" if turtle else "doc.nt")
    path.write_text(text, encoding="utf-8")
    fast = _outcome(path)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(parse, "FAST_FORMATS", ())
        slow = _outcome(path)
    _same(fast, slow)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=_HEADER, statements=st.lists(_STATEMENT, min_size=1, max_size=3), turtle=st.booleans()
)
def test_fastparse_never_accepts_what_pyoxigraph_refuses_and_agrees_on_the_rest(
    tmp_path_factory: pytest.TempPathFactory, header: str, statements: list[str], turtle: bool
) -> None:
    text = (header if turtle else "") + "\n".join(statements) + "\n"
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / ("doc.ttl" if turtle else "doc.nt")
    path.write_text(text, encoding="utf-8")
    fast = _outcome(path)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(parse, "FAST_FORMATS", ())
        slow = _outcome(path)
    _same(fast, slow)
