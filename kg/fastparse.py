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

The subset's grammar (token kinds, IRI checks, statement shapes) is in kg/fastgrammar.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, NamedTuple

import numpy as np

from kg import vocab
from kg.fastgrammar import (
    BAD,
    BLANK,
    COMMENT_LINE,
    IRI,
    LITERAL,
    PNAME,
    PREFIX,
    STRING,
    A,
    OutsideSubset,
    check_one_statement_per_line,
    directives,
    lang_and_datatype,
    ntriples_roles,
    token_kinds,
    turtle_roles,
    valid_irirefs,
)

# parsed at once: bounds the transient token lists (~5x the chunk), and small enough that a
# chunk's tokens are still in the CPU cache when they are looked up (1 MB: 0.91 CPU-s for the
# 1M-triple bench N-Triples, 8 MB: 1.09; Turtle 0.71 and 0.77)
CHUNK_BYTES = 1 << 20


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
        self.token_kinds = np.empty(0, dtype=np.int8)
        self._numbers = np.empty((3, 0), dtype=np.int64)  # entity, relation, form; -1: none

    @property
    def kinds(self) -> np.ndarray:
        return self.token_kinds[: len(self.unique)]

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
        if size > len(self.token_kinds):
            capacity = max(size, 2 * len(self.token_kinds), 1024)
            grown = np.empty(capacity, dtype=np.int8)
            grown[:n] = self.token_kinds[:n]
            numbers = np.empty((3, capacity), dtype=np.int64)
            numbers[:, :n] = self._numbers[:, :n]
            self.token_kinds, self._numbers = grown, numbers
        self.token_kinds[n:size] = kinds
        self._numbers[:, n:size] = -1
        self.unique += fresh
        self.values += [""] * len(fresh)


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
                text = COMMENT_LINE.sub(b"", chunk)
                _read_chunk(text, fmt, tag, out, seen, prefixes, first=n == 0, comments=False)
    except (OutsideSubset, UnicodeDecodeError):
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
    rest = bytearray()  # what follows the last cut: it holds no " .\n" (appends stay linear)
    for piece in pieces:
        start = max(len(rest) - 2, 0)
        rest += piece
        cut = rest.rfind(b" .\n", start)
        if cut >= 0:
            yield bytes(memoryview(rest)[: cut + 3])
            del rest[: cut + 3]
        elif len(rest) > 64 * CHUNK_BYTES:  # no statement end as this subset writes it
            raise OutsideSubset  # (a ".\n" ending, or a huge literal): pyoxigraph streams it
    yield bytes(rest)


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
    parts = STRING.split(text)  # text, literal, text, ...: literals out, so split() can cut
    plain = b'""'.join(parts[0::2])
    tokens = plain.split()
    strings = parts[1::2]
    if not tokens:
        return
    try:
        ids = _intern(tokens, fmt, seen.ids)
    except OutsideSubset:
        if comments and any(t[:1] == b"#" for t in tokens):
            raise _Comments from None
        raise
    fresh = seen.ids.take_fresh()
    if comments and any(t[:1] == b"#" for t in fresh):  # never kept: a "#" token is BAD
        seen.ids.forget(fresh)
        raise _Comments
    first_new = len(seen.unique)
    seen.add(fresh, token_kinds(fresh, fmt))
    kinds = seen.kinds[ids]
    start = directives(tokens, kinds, prefixes) if first and fmt == "turtle" else 0
    if (kinds[start:] == PREFIX).any() or (seen.kinds[first_new:] == BAD).any():
        raise OutsideSubset
    if fmt == "ntriples":
        check_one_statement_per_line(plain, kinds)
        subject, predicate, obj = ntriples_roles(kinds)
    else:
        subject, predicate, obj = turtle_roles(kinds[start:])
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
            raise OutsideSubset
        ids = np.empty(len(tokens), dtype=np.int64)
        for k in range(3):
            ids[k::4] = np.fromiter(map(known.__getitem__, tokens[k::4]), dtype=np.int64, count=n)
        ids[3::4] = known[b"."]
        return ids
    return np.fromiter(map(known.__getitem__, tokens), dtype=np.int64, count=len(tokens))


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
            raise OutsideSubset from None  # an undeclared prefix: pyoxigraph names it
        if not valid_irirefs(("\n".join(f"<{x}>" for x in expanded) + "\n").encode()):
            raise OutsideSubset
        for i, iri in zip(names, expanded, strict=True):
            values[i] = iri
    for i in (np.flatnonzero(kinds[first_new:] == A) + first_new).tolist():
        values[i] = vocab.RDF_TYPE


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
        form = Form(*lang_and_datatype(unique[o], prefixes))
        f = out._form_ids.get(form)
        if f is None:
            f = out._form_ids[form] = len(out.forms)
            out.forms.append(form)
        form_of[o] = f
    distinct = np.unique(objects)
    is_quoted = np.fromiter((unique[o][:1] == b'"' for o in distinct.tolist()), dtype=bool)
    quoted = is_quoted[np.searchsorted(distinct, objects)]  # numbers, booleans: unquoted
    if int(quoted.sum()) != len(strings):
        raise OutsideSubset
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
