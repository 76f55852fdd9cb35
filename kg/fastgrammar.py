"""The subset of N-Triples and Turtle that kg/fastparse.py reads: what each distinct token is
(validated once, with one regular-expression pass over all IRIs), and the grammar of a chunk's
token stream checked with numpy over token kinds. Whatever it cannot vouch for raises
`OutsideSubset`, and pyoxigraph reads the file instead.
"""

from __future__ import annotations

import re
from itertools import compress

import numpy as np

from kg import vocab

# An absolute IRI pyoxigraph surely accepts as it is (RFC 3987, ASCII only, no IP literal,
# user info or percent-encoded host): anything else goes to pyoxigraph.
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
_IRI = (
    r"[A-Za-z][A-Za-z0-9+.-]*:"
    r"(?://[A-Za-z0-9._~!$&'()*+,;=-]*(?::[0-9]*)?(?:/" + _PCHAR + r"*)*"
    r"|(?!//)(?:/?" + _PCHAR + r"+(?:/" + _PCHAR + r"*)*)?)"
    r"(?:\?(?:" + _PCHAR + r"|[/?])*)?(?:#(?:" + _PCHAR + r"|[/?])*)?"
)
_IRIREFS = re.compile(rb"(?:<" + _IRI.encode() + rb">\n)*")  # every token, "\n"-terminated
# The same check, fast (one character class, no alternation) where none of what it skips can
# occur: a '%', user info or a port in an authority, two '#', a path that is a lone '/'.
_IRIREFS_PLAIN = re.compile(rb"(?:<[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~!$&'()*+,;=:@/?#-]*>\n)*")
_IRI_SKIPPED = (  # each opens with a literal, which re scans for fast
    re.compile(rb"://[^/?#>\n]*[:@]"),
    re.compile(rb"#[^>\n]*#"),
    re.compile(rb":/[?#>]"),
)
IRI_ONE = re.compile(_IRI)
_NAME = rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?"
_PNAME_TEXT = rb"((?:[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)?):(" + _NAME + rb")?"
_PNAME = re.compile(_PNAME_TEXT)
_PNAMES = re.compile(rb"(?:(?:[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)?:(?:" + _NAME + rb")?\n)*")
_BLANK = re.compile(rb"_:" + _NAME)
_LANG = re.compile(rb"[a-zA-Z]{2,3}(?:-[a-zA-Z]{4})?(?:-(?:[a-zA-Z]{2}|[0-9]{3}))?")
STRING = re.compile(rb'"([^"\n]*)"')  # no escapes reach here (a backslash sends to pyoxigraph)
COMMENT_LINE = re.compile(rb"(?m)^[ \t]*#[^\n]*")
_EMPTY_LINES = re.compile(rb"\n\n+")
_NUMBER = {
    vocab.XSD + "integer": re.compile(rb"[+-]?[0-9]+"),
    vocab.XSD + "decimal": re.compile(rb"[+-]?[0-9]*\.[0-9]+"),
    vocab.XSD + "boolean": re.compile(rb"true|false"),
}

# token kinds
IRI, PNAME, BLANK, LITERAL, A, DOT, SEMI, COMMA, PREFIX, BAD = range(10)


def _one_of(*kinds: int) -> np.ndarray:
    """A lookup table: ``_one_of(IRI, BLANK)[kinds]`` is ``np.isin(kinds, (IRI, BLANK))``."""
    return np.isin(np.arange(10), kinds)


_TERMS = _one_of(IRI, PNAME, BLANK, LITERAL, A)
_SUBJECTS, _NT_SUBJECTS = _one_of(IRI, PNAME, BLANK), _one_of(IRI, BLANK)
_PREDICATES, _OBJECTS = _one_of(IRI, PNAME, A), _one_of(IRI, PNAME, BLANK, LITERAL)
_NT_OBJECTS = _one_of(IRI, BLANK, LITERAL)
_PUNCT = {b".": DOT, b";": SEMI, b",": COMMA, b"a": A, b"@prefix": PREFIX}


class OutsideSubset(Exception):
    """The text is outside the subset: pyoxigraph reads the file instead (and gives any error)."""


def token_kinds(unique: list[bytes], fmt: str) -> np.ndarray:
    """The kind of each distinct token; IRIs and prefixed names are validated here, once
    each, and in one regular-expression pass for all of them."""
    lengths = np.fromiter(map(len, unique), dtype=np.int64, count=len(unique))
    blob = np.frombuffer(b"".join(unique), dtype=np.uint8)
    ends = np.cumsum(lengths)
    head, tail = blob[ends - lengths], blob[ends - 1]
    kinds = np.full(len(unique), BAD, dtype=np.int8)
    if not unique:
        return kinds
    iri = (head == ord("<")) & (tail == ord(">"))
    refs = list(compress(unique, iri.tolist()))
    if refs and not valid_irirefs(b"\n".join(refs) + b"\n"):
        raise OutsideSubset  # some IRI needs pyoxigraph's judgement (or its error message)
    kinds[iri] = IRI
    rest = ~iri
    if fmt == "turtle":  # prefixed names: letters or ':' first, all checked in one pass
        letter = ((head | 0x20) >= ord("a")) & ((head | 0x20) <= ord("z"))
        named = rest & (letter | (head == ord(":")))
        for i, t in enumerate(unique):
            if t in (b"a", b"true", b"false"):  # keywords, not names
                named[i] = False
        names = list(compress(unique, named.tolist()))
        if names and _PNAMES.fullmatch(b"\n".join(names) + b"\n") is not None:
            kinds[named] = PNAME
            rest &= ~named
    for i in np.flatnonzero(rest).tolist():
        t = unique[i]
        if t in _PUNCT:
            kinds[i] = _PUNCT[t]
        elif literal_form(t, fmt) is not None:
            kinds[i] = LITERAL
        elif t[0] == ord("_"):
            kinds[i] = BLANK if _BLANK.fullmatch(t) else BAD
        elif fmt == "turtle" and _PNAME.fullmatch(t):
            kinds[i] = PNAME
    if fmt == "ntriples":
        kinds[(kinds == PREFIX) | (kinds == A)] = BAD  # Turtle only
    return kinds


def valid_irirefs(joined: bytes) -> bool:
    """Whether every ``<iri>\\n`` of ``joined`` holds an absolute IRI of the subset."""
    if _IRIREFS_PLAIN.fullmatch(joined) is None:
        return b"%" in joined and _IRIREFS.fullmatch(joined) is not None
    if b"%" in joined or any(p.search(joined) for p in _IRI_SKIPPED):
        return _IRIREFS.fullmatch(joined) is not None
    return True


def literal_form(t: bytes, fmt: str) -> tuple[str, bytes] | None:
    """``(kind, rest)`` of a literal token: ``("string", b"")``, ``("lang", tag)``,
    ``("datatype", iri or prefixed name)`` or ``("number", datatype IRI)``; None if it is none."""
    if t.startswith(b'""'):
        rest = t[2:]
        if not rest:
            return "string", b""
        if rest[:1] == b"@" and _LANG.fullmatch(rest, 1):
            return "lang", rest[1:]
        if rest[:2] == b"^^":
            dt = rest[2:]
            if dt[:1] == b"<" and dt[-1:] == b">" and IRI_ONE.fullmatch(dt[1:-1].decode()):
                return "datatype", dt
            if fmt == "turtle" and _PNAME.fullmatch(dt):
                return "datatype", dt
        return None
    if fmt != "turtle":
        return None
    for datatype, pattern in _NUMBER.items():
        if pattern.fullmatch(t):
            return "number", datatype.encode()
    return None


def directives(tokens: list[bytes], kinds: np.ndarray, prefixes: dict[bytes, str]) -> int:
    """Read the ``@prefix p: <iri> .`` directives that open a Turtle file; the first token
    after them. A directive anywhere else sends the file to pyoxigraph."""
    at = 0
    while at < len(kinds) and kinds[at] == PREFIX:
        if at + 4 > len(kinds) or kinds[at + 2] != IRI or kinds[at + 3] != DOT:
            raise OutsideSubset
        name, iri = tokens[at + 1], tokens[at + 2][1:-1].decode()
        m = _PNAME.fullmatch(name)
        if m is None or m.group(2) is not None or prefixes.get(m.group(1), iri) != iri:
            raise OutsideSubset
        prefixes[m.group(1)] = iri
        at += 4
    return at


def check_one_statement_per_line(text: bytes, kinds: np.ndarray) -> None:
    """N-Triples puts one statement on each line: once runs of empty lines are one, every
    newline but a leading one follows `` .``, and there are as many statements as lines."""
    chars = np.frombuffer(text, dtype=np.uint8)
    at = np.flatnonzero(chars == ord("\n"))  # numpy: 4x faster than two bytes.count here
    inner = at[at >= 2]
    follows_dot = (chars[inner - 1] == ord(".")) & (chars[inner - 2] == ord(" "))
    newlines, ends = len(at), int(follows_dot.sum())  # ends: how many " .\n"
    if newlines != ends:  # an empty line (or a statement cut by a newline): the slow check
        text = _EMPTY_LINES.sub(b"\n", text)
        newlines = text.count(b"\n")
    ending = text.endswith(b" .")
    lines = ends + ending
    if newlines != lines - ending + text.startswith(b"\n"):
        raise OutsideSubset
    if not (ending or not text or text.endswith(b"\n")):
        raise OutsideSubset
    if lines != len(kinds) // 4:
        raise OutsideSubset


def ntriples_roles(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of subjects, predicates and objects: N-Triples is ``s p o .`` throughout."""
    n = len(kinds)
    if n % 4 or not (kinds[3::4] == DOT).all():
        raise OutsideSubset
    s, p, o = kinds[0::4], kinds[1::4], kinds[2::4]
    if not (_NT_SUBJECTS[s].all() and (p == IRI).all()):
        raise OutsideSubset
    if not _NT_OBJECTS[o].all():
        raise OutsideSubset
    at = np.arange(0, n, 4)
    return at, at + 1, at + 2


def turtle_roles(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of each triple's subject, predicate and object in a Turtle token stream of
    ``s p o (, o)* (; p o (, o)*)* ;* .`` statements, checked with array operations."""
    n = len(kinds)
    if n == 0:
        return (np.empty(0, dtype=np.int64),) * 3
    if kinds[-1] != DOT:
        raise OutsideSubset
    term = _TERMS[kinds]
    prev = np.concatenate(([DOT], kinds[:-1]))
    subject = term & (prev == DOT)
    after_subject = np.concatenate(([False], subject[:-1]))
    predicate = term & (after_subject | (prev == SEMI))
    after_predicate = np.concatenate(([False], predicate[:-1]))
    obj = term & (after_predicate | (prev == COMMA))
    roles = subject.astype(np.int8) + predicate + obj
    if (roles[term] != 1).any():
        raise OutsideSubset
    ok = (
        ~subject | _SUBJECTS[kinds],
        ~predicate | _PREDICATES[kinds],
        ~obj | _OBJECTS[kinds],
        (kinds != SEMI) | (prev == SEMI) | np.concatenate(([False], obj[:-1])),
        (kinds != COMMA) | np.concatenate(([False], obj[:-1])),
        (kinds != DOT) | (prev == SEMI) | np.concatenate(([False], obj[:-1])),
    )
    if not all(c.all() for c in ok):
        raise OutsideSubset
    # a SEMI run must start after an object; a SEMI after a SEMI is fine only within a run
    semi_start = (kinds == SEMI) & (prev != SEMI)
    if not np.concatenate(([False], obj[:-1]))[semi_start].all():
        raise OutsideSubset
    position = np.arange(n)
    last_subject = np.maximum.accumulate(np.where(subject, position, -1))
    last_predicate = np.maximum.accumulate(np.where(predicate, position, -1))
    at = np.flatnonzero(obj)
    return last_subject[at], last_predicate[at], at


def lang_and_datatype(t: bytes, prefixes: dict[bytes, str]) -> tuple[str | None, str]:
    """A literal token's language tag (lower case, None when none) and datatype IRI."""
    form = literal_form(t, "turtle")
    assert form is not None  # the token's kind says it is a literal
    kind, rest = form
    if kind == "string":
        return None, vocab.XSD_STRING
    if kind == "lang":
        return rest.decode().lower(), vocab.RDF_LANG_STRING
    if kind == "number":
        return None, rest.decode()
    datatype = rest[1:-1].decode() if rest[:1] == b"<" else expand_name(rest, prefixes)
    if datatype == vocab.RDF_LANG_STRING:
        raise OutsideSubset  # pyoxigraph refuses it without a language tag
    return None, datatype


def expand_name(name: bytes, prefixes: dict[bytes, str]) -> str:
    """The IRI a prefixed name stands for, when it is one the subset vouches for."""
    prefix, _, local = name.partition(b":")
    if prefix not in prefixes:
        raise OutsideSubset  # pyoxigraph names the undeclared prefix
    iri = prefixes[prefix] + local.decode()
    if not IRI_ONE.fullmatch(iri):
        raise OutsideSubset
    return iri
