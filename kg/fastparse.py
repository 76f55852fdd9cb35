"""A bulk reader for the plain N-Triples and Turtle that most large KGs are written in.

pyoxigraph parses about a million triples a second, but handing each one to Python as objects
(a quad, three terms, their strings) costs more than the parse itself: measured on a 1M-triple
file, the parse alone takes 1.3 s and reading the terms and interning them another 2.5 s. This
reader never makes a per-triple object. It cuts the file into whitespace tokens with bytes
methods (C speed), interns the tokens with a dict, checks the grammar with numpy over token
kinds, and validates each distinct IRI once, so the Python work grows with the number of
distinct terms, not of triples.

It reads a strict subset: absolute ASCII IRIs, ``_:`` blank-node labels, single-line string
literals without escapes (with a language tag or a datatype), and for Turtle ``@prefix``
directives at the top, prefixed names, ``a``, ``;``, ``,``, integers, decimals and booleans, every
token separated by whitespace. Whatever falls outside it (an escape, a relative IRI, a comment
after a statement, a ``[ ]``, ...) makes `read_simple` return None and the file is parsed by
pyoxigraph as before, which also produces every error message. So the subset never accepts a
file pyoxigraph refuses, and gives the same triples (tests/test_kg_fastparse.py checks both).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import compress
from typing import IO, NamedTuple

import numpy as np

from kg import vocab

# parsed at once: bounds the transient token lists (~5x the chunk), and small enough that a
# chunk's tokens are still in the CPU cache when they are looked up (1 MB: 0.91 CPU-s for the
# 1M-triple bench N-Triples, 8 MB: 1.09; Turtle 0.71 and 0.77)
CHUNK_BYTES = 1 << 20

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
_IRI_ONE = re.compile(_IRI)
_NAME = rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?"
_PNAME_TEXT = rb"((?:[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)?):(" + _NAME + rb")?"
_PNAME = re.compile(_PNAME_TEXT)
_PNAMES = re.compile(rb"(?:(?:[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)?:(?:" + _NAME + rb")?\n)*")
_BLANK = re.compile(rb"_:" + _NAME)
_LANG = re.compile(rb"[a-zA-Z]{2,3}(?:-[a-zA-Z]{4})?(?:-(?:[a-zA-Z]{2}|[0-9]{3}))?")
_STRING = re.compile(rb'"([^"\n]*)"')  # no escapes reach here (a backslash sends to pyoxigraph)
_COMMENT_LINE = re.compile(rb"(?m)^[ \t]*#[^\n]*")
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


class Form(NamedTuple):
    """A literal's language tag (lower case, None when none) and datatype IRI."""

    lang: str | None
    datatype: str


@dataclass
class Triples:
    """What a file holds, interned: entity-to-entity triples as index arrays, and literals."""

    entities: list[str] = field(default_factory=list)  # IRIs and blank-node keys
    predicates: list[str] = field(default_factory=list)
    subjects: list[np.ndarray] = field(default_factory=list)  # int64 per chunk
    relations: list[np.ndarray] = field(default_factory=list)
    objects: list[np.ndarray] = field(default_factory=list)
    # literal triples, in document order: subject, predicate, form (index into forms), value
    literal_subjects: list[np.ndarray] = field(default_factory=list)
    literal_relations: list[np.ndarray] = field(default_factory=list)
    literal_forms: list[np.ndarray] = field(default_factory=list)
    literal_values: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    _entity_ids: dict[str, int] = field(default_factory=dict)
    _predicate_ids: dict[str, int] = field(default_factory=dict)
    _form_ids: dict[Form, int] = field(default_factory=dict)
    _blank_keys: dict[bytes, str] = field(default_factory=dict)


class _Ids(dict[bytes, int]):
    """Token ids: a token met for the first time gets the next id, and joins `fresh`. The
    look-up of a known token stays one C-level dict probe."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[bytes] = []

    def __missing__(self, token: bytes) -> int:
        i = self[token] = len(self)
        self.fresh.append(token)
        return i

    def take_fresh(self) -> list[bytes]:
        fresh, self.fresh = self.fresh, []
        return fresh

    def forget(self, tokens: list[bytes]) -> None:
        for t in tokens:
            del self[t]


class _Tokens:
    """Every distinct token met so far, with what it is; a chunk adds only its new ones, so
    the per-token Python work is done once per distinct token in the whole file. The arrays
    grow by doubling, so a chunk's cost does not grow with the tokens met before it."""

    def __init__(self) -> None:
        self.ids = _Ids()
        self.unique: list[bytes] = []
        self.values: list[str] = []  # IRI or blank-node key; "" for others
        self._kinds = np.empty(0, dtype=np.int8)
        self._numbers = np.empty((3, 0), dtype=np.int64)  # entity, relation, form; -1: none

    @property
    def kinds(self) -> np.ndarray:
        return self._kinds[: len(self.unique)]

    @property
    def entity(self) -> np.ndarray:
        """Index into `Triples.entities` (writable view)."""
        return self._numbers[0, : len(self.unique)]

    @property
    def relation(self) -> np.ndarray:
        """Index into `Triples.predicates` (writable view)."""
        return self._numbers[1, : len(self.unique)]

    @property
    def form(self) -> np.ndarray:
        """Index into `Triples.forms` (writable view)."""
        return self._numbers[2, : len(self.unique)]

    def add(self, fresh: list[bytes], kinds: np.ndarray) -> None:
        """Describe the tokens `ids` just numbered (``len(unique)`` onwards)."""
        n, size = len(self.unique), len(self.unique) + len(fresh)
        if size > len(self._kinds):
            capacity = max(size, 2 * len(self._kinds), 1024)
            grown = np.empty(capacity, dtype=np.int8)
            grown[:n] = self._kinds[:n]
            numbers = np.empty((3, capacity), dtype=np.int64)
            numbers[:, :n] = self._numbers[:, :n]
            self._kinds, self._numbers = grown, numbers
        self._kinds[n:size] = kinds
        self._numbers[:, n:size] = -1
        self.unique += fresh
        self.values += [""] * len(fresh)


class _Reject(Exception):
    """The text is outside the subset: pyoxigraph reads the file instead."""


class _Comments(Exception):
    """The chunk has a comment (a token starting with ``#``); raised before anything of the
    chunk is kept, so that it can be read again with its whole-line comments removed."""


def read_simple(data: bytes | IO[bytes], fmt: str, tag: str) -> Triples | None:
    """Every triple of ``data`` (a whole ``ntriples`` or ``turtle`` file), or None when the
    file is outside the subset this reader accepts (then pyoxigraph must read it).

    Args:
        data: the file's bytes (gunzipped), or a binary stream of them, read `CHUNK_BYTES` at
            a time (the whole file is then never in memory at once).
        fmt: ``"ntriples"`` or ``"turtle"``.
        tag: the file's blank-node prefix: the n-th distinct label becomes ``_:<tag>b<n>``.
    """
    if fmt not in ("ntriples", "turtle"):
        return None
    out, seen = Triples(), _Tokens()
    prefixes: dict[bytes, str] = {}
    try:
        for n, chunk in enumerate(_chunks(data)):
            # escapes, CR, NUL, VT, FF go to pyoxigraph; a '"""' string fails the grammar check
            if _has_any(chunk, b"\\\r\x00\x0b\x0c"):
                return None
            try:
                _read_chunk(chunk, fmt, tag, out, seen, prefixes, first=n == 0)
            except _Comments:  # rare: read again without its whole-line comments
                text = _COMMENT_LINE.sub(b"", chunk)
                _read_chunk(text, fmt, tag, out, seen, prefixes, first=n == 0, comments=False)
    except (_Reject, UnicodeDecodeError):
        return None
    return out


def _has_any(data: bytes, chars: bytes) -> bool:
    return any(data.find(bytes([c])) >= 0 for c in chars)


def _chunks(data: bytes | IO[bytes]) -> Iterator[bytes]:
    """``data`` cut after a ``" .\\n"`` (a statement's end, as serializers write it) about
    every `CHUNK_BYTES`. A cut that falls inside a statement makes that chunk fail the grammar
    check, and pyoxigraph then reads the file: never a wrong triple."""
    if isinstance(data, bytes):
        pieces: Iterator[bytes] = (
            data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)
        )
    else:
        pieces = iter(lambda: data.read(CHUNK_BYTES), b"")
    rest = b""
    for piece in pieces:
        rest += piece
        cut = rest.rfind(b" .\n")
        if cut >= 0:
            yield rest[: cut + 3]
            rest = rest[cut + 3 :]
    yield rest


def _read_chunk(
    text: bytes,
    fmt: str,
    tag: str,
    out: Triples,
    seen: _Tokens,
    prefixes: dict[bytes, str],
    first: bool,
    comments: bool = True,
) -> None:
    """Add the statements of ``text`` to ``out``. With ``comments``, a comment raises
    `_Comments` (nothing kept yet); the caller strips whole-line comments and calls again with
    ``comments=False``, where a comment left (after a statement) is outside the subset. This
    finds comments among the tokens, which costs nothing, instead of scanning every chunk."""
    parts = _STRING.split(text)  # text, literal, text, ...: literals out, so split() can cut
    plain = b'""'.join(parts[0::2])
    tokens = plain.split()
    strings = parts[1::2]
    if not tokens:
        return
    try:
        ids = _intern(tokens, fmt, seen.ids)
    except _Reject:
        if comments and any(t[:1] == b"#" for t in tokens):
            raise _Comments from None
        raise
    fresh = seen.ids.take_fresh()
    if comments and any(t[:1] == b"#" for t in fresh):  # never kept: a "#" token is BAD
        seen.ids.forget(fresh)
        raise _Comments
    first_new = len(seen.unique)
    seen.add(fresh, _kinds(fresh, fmt))
    kinds = seen.kinds[ids]
    start = _directives(tokens, kinds, prefixes) if first and fmt == "turtle" else 0
    if (kinds[start:] == PREFIX).any() or (seen.kinds[first_new:] == BAD).any():
        raise _Reject
    if fmt == "ntriples":
        _check_one_statement_per_line(plain, kinds)
        subject, predicate, obj = _ntriples_roles(kinds)
    else:
        subject, predicate, obj = _turtle_roles(kinds[start:])
        subject, predicate, obj = subject + start, predicate + start, obj + start
    _values(seen, first_new, prefixes)
    s, p, o = ids[subject], ids[predicate], ids[obj]
    edges = seen.kinds[o] != LITERAL
    _number_entities(seen, np.concatenate([s, o[edges]]), ids, kinds, tag, out)
    _number_predicates(seen, p, out)
    out.subjects.append(seen.entity[s[edges]])
    out.relations.append(seen.relation[p[edges]])
    out.objects.append(seen.entity[o[edges]])
    if not edges.all():
        lit = ~edges
        _literals(seen, strings, o[lit], seen.entity[s[lit]], seen.relation[p[lit]], prefixes, out)


def _intern(tokens: list[bytes], fmt: str, known: _Ids) -> np.ndarray:
    """The id of each token, new tokens numbered as they come (`_Ids`). One dict probe per
    token; N-Triples' ``.`` tokens are not looked up at all (a statement is four tokens, the
    last one ``.``: anything else is left to pyoxigraph)."""
    if fmt == "ntriples":
        n = len(tokens) // 4
        if len(tokens) % 4 or tokens[3::4].count(b".") != n:
            raise _Reject
        ids = np.empty(len(tokens), dtype=np.int64)
        for k in range(3):
            ids[k::4] = np.fromiter(map(known.__getitem__, tokens[k::4]), dtype=np.int64, count=n)
        ids[3::4] = known[b"."]
        return ids
    return np.fromiter(map(known.__getitem__, tokens), dtype=np.int64, count=len(tokens))


def _kinds(unique: list[bytes], fmt: str) -> np.ndarray:
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
    if refs and not _valid_irirefs(b"\n".join(refs) + b"\n"):
        raise _Reject  # some IRI needs pyoxigraph's judgement (or its error message)
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
        elif _literal_form(t, fmt) is not None:
            kinds[i] = LITERAL
        elif t[0] == ord("_"):
            kinds[i] = BLANK if _BLANK.fullmatch(t) else BAD
        elif fmt == "turtle" and _PNAME.fullmatch(t):
            kinds[i] = PNAME
    if fmt == "ntriples":
        kinds[(kinds == PREFIX) | (kinds == A)] = BAD  # Turtle only
    return kinds


def _valid_irirefs(joined: bytes) -> bool:
    """Whether every ``<iri>\\n`` of ``joined`` holds an absolute IRI of the subset."""
    if _IRIREFS_PLAIN.fullmatch(joined) is None:
        return b"%" in joined and _IRIREFS.fullmatch(joined) is not None
    if b"%" in joined or any(p.search(joined) for p in _IRI_SKIPPED):
        return _IRIREFS.fullmatch(joined) is not None
    return True


def _literal_form(t: bytes, fmt: str) -> tuple[str, bytes] | None:
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
            if dt[:1] == b"<" and dt[-1:] == b">" and _IRI_ONE.fullmatch(dt[1:-1].decode()):
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


def _directives(tokens: list[bytes], kinds: np.ndarray, prefixes: dict[bytes, str]) -> int:
    """Read the ``@prefix p: <iri> .`` directives that open a Turtle file; the first token
    after them. A directive anywhere else sends the file to pyoxigraph."""
    at = 0
    while at < len(kinds) and kinds[at] == PREFIX:
        if at + 4 > len(kinds) or kinds[at + 2] != IRI or kinds[at + 3] != DOT:
            raise _Reject
        name, iri = tokens[at + 1], tokens[at + 2][1:-1].decode()
        m = _PNAME.fullmatch(name)
        if m is None or m.group(2) is not None or prefixes.get(m.group(1), iri) != iri:
            raise _Reject
        prefixes[m.group(1)] = iri
        at += 4
    return at


def _check_one_statement_per_line(text: bytes, kinds: np.ndarray) -> None:
    """N-Triples puts one statement on each line: once runs of empty lines are one, every
    newline but a leading one follows `` .``, and there are as many statements as lines."""
    newlines, ends = text.count(b"\n"), text.count(b" .\n")
    if newlines != ends:  # an empty line (or a statement cut by a newline): the slow check
        text = _EMPTY_LINES.sub(b"\n", text)
        newlines = text.count(b"\n")
    ending = text.endswith(b" .")
    lines = ends + ending
    if newlines != lines - ending + text.startswith(b"\n"):
        raise _Reject
    if not (ending or not text or text.endswith(b"\n")):
        raise _Reject
    if lines != len(kinds) // 4:
        raise _Reject


def _ntriples_roles(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of subjects, predicates and objects: N-Triples is ``s p o .`` throughout."""
    n = len(kinds)
    if n % 4 or not (kinds[3::4] == DOT).all():
        raise _Reject
    s, p, o = kinds[0::4], kinds[1::4], kinds[2::4]
    if not (_NT_SUBJECTS[s].all() and (p == IRI).all()):
        raise _Reject
    if not _NT_OBJECTS[o].all():
        raise _Reject
    at = np.arange(0, n, 4)
    return at, at + 1, at + 2


def _turtle_roles(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of each triple's subject, predicate and object in a Turtle token stream of
    ``s p o (, o)* (; p o (, o)*)* ;* .`` statements, checked with array operations."""
    n = len(kinds)
    if n == 0:
        return (np.empty(0, dtype=np.int64),) * 3
    if kinds[-1] != DOT:
        raise _Reject
    term = _TERMS[kinds]
    prev = np.concatenate(([DOT], kinds[:-1]))
    subject = term & (prev == DOT)
    after_subject = np.concatenate(([False], subject[:-1]))
    predicate = term & (after_subject | (prev == SEMI))
    after_predicate = np.concatenate(([False], predicate[:-1]))
    obj = term & (after_predicate | (prev == COMMA))
    roles = subject.astype(np.int8) + predicate + obj
    if (roles[term] != 1).any():
        raise _Reject
    ok = (
        ~subject | _SUBJECTS[kinds],
        ~predicate | _PREDICATES[kinds],
        ~obj | _OBJECTS[kinds],
        (kinds != SEMI) | (prev == SEMI) | np.concatenate(([False], obj[:-1])),
        (kinds != COMMA) | np.concatenate(([False], obj[:-1])),
        (kinds != DOT) | (prev == SEMI) | np.concatenate(([False], obj[:-1])),
    )
    if not all(c.all() for c in ok):
        raise _Reject
    # a SEMI run must start after an object; a SEMI after a SEMI is fine only within a run
    semi_start = (kinds == SEMI) & (prev != SEMI)
    if not np.concatenate(([False], obj[:-1]))[semi_start].all():
        raise _Reject
    position = np.arange(n)
    last_subject = np.maximum.accumulate(np.where(subject, position, -1))
    last_predicate = np.maximum.accumulate(np.where(predicate, position, -1))
    at = np.flatnonzero(obj)
    return last_subject[at], last_predicate[at], at


def _values(seen: _Tokens, first_new: int, prefixes: dict[bytes, str]) -> None:
    """The IRI each new IRI, prefixed-name or ``a`` token stands for."""
    kinds, unique, values = seen.kinds, seen.unique, seen.values
    for i in (np.flatnonzero(kinds[first_new:] == IRI) + first_new).tolist():
        values[i] = unique[i][1:-1].decode()
    names = (np.flatnonzero(kinds[first_new:] == PNAME) + first_new).tolist()
    if names:
        try:  # the prefix, then the local name, concatenated; all checked in one pass
            expanded = [
                prefixes[p] + local.decode()
                for p, _, local in (unique[i].partition(b":") for i in names)
            ]
        except KeyError:
            raise _Reject from None  # an undeclared prefix: pyoxigraph names it
        if not _valid_irirefs(("\n".join(f"<{x}>" for x in expanded) + "\n").encode()):
            raise _Reject
        for i, iri in zip(names, expanded, strict=True):
            values[i] = iri
    for i in (np.flatnonzero(kinds[first_new:] == A) + first_new).tolist():
        values[i] = vocab.RDF_TYPE


def _expand(name: bytes, prefixes: dict[bytes, str]) -> str:
    prefix, _, local = name.partition(b":")
    if prefix not in prefixes:
        raise _Reject  # pyoxigraph names the undeclared prefix
    iri = prefixes[prefix] + local.decode()
    if not _IRI_ONE.fullmatch(iri):
        raise _Reject
    return iri


def _number_entities(
    seen: _Tokens, used: np.ndarray, ids: np.ndarray, kinds: np.ndarray, tag: str, out: Triples
) -> None:
    """Give an index into ``out.entities`` to each token of ``used`` that has none yet."""
    need = np.unique(used[seen.entity[used] < 0])  # few: most tokens were numbered before
    if not len(need):
        return
    blank = set(need[seen.kinds[need] == BLANK].tolist())
    if blank:  # keys by first appearance, as the pyoxigraph path numbers them
        at = np.flatnonzero(kinds == BLANK)
        order, first = np.unique(ids[at], return_index=True)
        for i in order[np.argsort(first)].tolist():
            if i in blank:
                label = seen.unique[i]
                key = out._blank_keys.get(label)
                if key is None:
                    key = out._blank_keys[label] = f"_:{tag}b{len(out._blank_keys)}"
                seen.values[i] = key
    known, entities, values, entity = out._entity_ids, out.entities, seen.values, seen.entity
    for i in need.tolist():
        v = values[i]
        e = known.get(v)
        if e is None:
            e = known[v] = len(entities)
            entities.append(v)
        entity[i] = e


def _number_predicates(seen: _Tokens, used: np.ndarray, out: Triples) -> None:
    """Give an index into ``out.predicates`` to each token of ``used`` that has none yet."""
    known, relation = out._predicate_ids, seen.relation
    for i in np.unique(used[relation[used] < 0]).tolist():
        v = seen.values[i]
        r = known.get(v)
        if r is None:
            r = known[v] = len(out.predicates)
            out.predicates.append(v)
        relation[i] = r


def _literals(
    seen: _Tokens,
    strings: list[bytes],
    objects: np.ndarray,
    subjects: np.ndarray,
    relations: np.ndarray,
    prefixes: dict[bytes, str],
    out: Triples,
) -> None:
    """Literal triples, in document order: ``objects`` are their token ids, ``subjects`` and
    ``relations`` indexes into ``out``. A quoted token's value is the next of ``strings``
    (every string of the chunk is such an object, in order)."""
    unique, form_of = seen.unique, seen.form
    for o in np.unique(objects[form_of[objects] < 0]).tolist():
        form = Form(*_lang_and_datatype(unique[o], prefixes))
        f = out._form_ids.get(form)
        if f is None:
            f = out._form_ids[form] = len(out.forms)
            out.forms.append(form)
        form_of[o] = f
    distinct = np.unique(objects)
    is_quoted = np.fromiter((unique[o][:1] == b'"' for o in distinct.tolist()), dtype=bool)
    quoted = is_quoted[np.searchsorted(distinct, objects)]  # numbers, booleans: unquoted
    if int(quoted.sum()) != len(strings):
        raise _Reject
    if quoted.all():
        raw = strings
    else:  # numbers and booleans are their own text
        texts = iter(strings)
        raw = [
            next(texts) if q else unique[o]
            for q, o in zip(quoted.tolist(), objects.tolist(), strict=True)
        ]
    values = b"\x00".join(raw).decode().split("\x00") if raw else []  # one decode for all
    out.literal_subjects.append(subjects)
    out.literal_relations.append(relations)
    out.literal_forms.append(form_of[objects])
    out.literal_values.extend(values)


def _lang_and_datatype(t: bytes, prefixes: dict[bytes, str]) -> tuple[str | None, str]:
    form = _literal_form(t, "turtle")
    assert form is not None  # the token's kind says it is a literal
    kind, rest = form
    if kind == "string":
        return None, vocab.XSD_STRING
    if kind == "lang":
        return rest.decode().lower(), vocab.RDF_LANG_STRING
    if kind == "number":
        return None, rest.decode()
    datatype = rest[1:-1].decode() if rest[:1] == b"<" else _expand(rest, prefixes)
    if datatype == vocab.RDF_LANG_STRING:
        raise _Reject  # pyoxigraph refuses it without a language tag
    return None, datatype
