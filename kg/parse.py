"""Read triples files into a `GraphBuilder`.

RDF goes through pyoxigraph's Rust parser (the fast path; rdflib's ``ox-*`` plugins use the same
one). ``parser="rdflib"`` reads through rdflib instead: the reference the fast path is tested
against, and a fallback for syntax corners oxigraph rejects. Delimited files (TSV/CSV) hold plain
``head, relation, tail`` names, which become IRIs under ``KGConfig.base_iri`` and keep the name as
their label.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import reprlib
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np

from kg import vocab
from kg.compile import GraphBuilder
from kg.delimited import numbered_rows
from kg.encoding import recode_hint
from kg.errors import KGLoadError
from kg.fastparse import Triples, read_simple
from kg.formats import DELIMITED, FORMATS
from kg.guards import ReadLimits, refuse_deep_json, refuse_xml_entities

Progress = Callable[[int], None]  # called with the number of bytes just read from disk
PARSERS = ("oxigraph", "rdflib")
EDGE_BATCH = 65_536  # edges handed to the builder at once (bulk interning is ~4x faster)
FAST_FORMATS = ("ntriples", "turtle")  # tried with kg/fastparse.py before pyoxigraph

OXIGRAPH_FORMATS = {  # kg.formats name -> pyoxigraph.RdfFormat attribute
    "turtle": "TURTLE",
    "ntriples": "N_TRIPLES",
    "nquads": "N_QUADS",
    "trig": "TRIG",
    "n3": "N3",
    "json-ld": "JSON_LD",
    "xml": "RDF_XML",
}
_RDFLIB_FORMATS = {
    "turtle": "turtle",
    "ntriples": "nt",
    "nquads": "nquads",
    "trig": "trig",
    "n3": "n3",
    "json-ld": "json-ld",
    "xml": "xml",
}
N3_FORMULA = (
    "N3 formulas ({ ... }, rules among them) are not supported: their triples are quoted, not "
    "asserted; remove the formulas, or give the facts as Turtle"
)
_HEADERS = {
    ("head", "relation", "tail"),
    ("subject", "predicate", "object"),
    ("source", "relation", "target"),
    ("h", "r", "t"),
}


def read_file(
    path: Path,
    fmt: str,
    builder: GraphBuilder,
    *,
    tag: str,
    parser: str = "oxigraph",
    progress: Progress | None = None,
    limits: ReadLimits | None = None,
) -> None:
    """Add every triple of ``path`` (in format ``fmt``) to ``builder``.

    Args:
        tag: short prefix that keeps this file's blank nodes apart from other files'.
        parser: "oxigraph" (fast) or "rdflib" (reference) for RDF formats.
        limits: the longest literal and label accepted (default `ReadLimits()`).

    Raises:
        KGLoadError: naming the file, the line when known, and what was expected; also for
            RDF/XML that declares entities, JSON-LD nested deeper than ``limits`` allow, and a
            literal or label over ``limits``.
    """
    if parser not in PARSERS:
        raise KGLoadError(f"unknown parser {parser!r}; choose one of {', '.join(PARSERS)}")
    limits = limits or ReadLimits()
    if fmt in ("xml", "json-ld"):
        with _open_binary(path, None) as stream:
            if fmt == "xml":
                refuse_xml_entities(stream, path)
            else:
                refuse_deep_json(stream, path, limits.max_json_depth)
    if fmt in DELIMITED:
        _read_delimited(path, fmt, builder, progress, limits)
        return
    try:
        if parser == "oxigraph":
            _read_rdf_oxigraph(path, fmt, builder, tag, progress, limits)
        else:
            _read_rdf_rdflib(path, fmt, builder, tag, progress, limits)
    except KGLoadError as e:
        looks = _looks_like(path)
        if looks is None or looks == fmt or (looks == "turtle" and fmt in ("trig", "n3")):
            raise
        ext = FORMATS[looks][0]
        raise KGLoadError(
            f"{e.reason}; the file looks like {_SHOWN[looks]}, not {fmt} as its name says: "
            f"rename it "
            f"to .{ext} (or pass `--format {looks}` to kgfuse kg load)",
            e.path,
            e.line,
        ) from e


_SHOWN = {"xml": "RDF/XML", "json-ld": "JSON-LD", "turtle": "Turtle"}


def _looks_like(path: Path) -> str | None:
    """The RDF syntax the start of ``path`` plainly is (RDF/XML, JSON-LD or Turtle), or None:
    a file named .ttl that holds RDF/XML fails on its first character with words about IRIs,
    not about the file's name."""
    try:
        with _open_binary(path, None) as stream:
            head = stream.read(1024).lstrip()
    except (OSError, EOFError, zlib.error, KGLoadError):
        return None
    if head.startswith(b"<?xml") or head.startswith(b"<rdf:RDF"):
        return "xml"
    if head.startswith(b"{") or (head.startswith(b"[") and head[1:].lstrip().startswith(b"{")):
        return "json-ld"
    if re.match(rb"(@prefix|@base|PREFIX|BASE)\s", head):
        return "turtle"
    return None


def _name_predicates(builder: GraphBuilder) -> frozenset[str]:
    """Predicates whose literals become labels or aliases (``max_label_chars`` applies)."""
    return frozenset(builder.config.label_predicates) | frozenset(builder.config.alias_predicates)


class _CountingReader(io.RawIOBase):
    """Reports bytes read from disk, so a progress bar can follow a long parse."""

    def __init__(self, raw: IO[bytes], progress: Progress):
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._progress(n)
        return n


@contextmanager
def _open_binary(path: Path, progress: Progress | None) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when it is gzip (by its magic number, not its name), without
    a leading UTF-8 byte-order mark (which editors on Windows add; no RDF parser skips it)."""
    with open(path, "rb") as raw:
        start = raw.read(3)
        magic = start[:2]
        raw.seek(len(codecs.BOM_UTF8) if start == codecs.BOM_UTF8 else 0)
        stream: IO[bytes] = raw
        if progress is not None:
            stream = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 20)
        if magic == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        try:
            yield stream
        except (OSError, EOFError, zlib.error) as e:
            if magic == b"\x1f\x8b":
                raise KGLoadError(
                    f"the gzip stream is corrupt or truncated ({e}); download or compress the "
                    "file again (`gzip -t FILE` checks a copy)",
                    path,
                ) from e
            raise


def _start(path: Path) -> bytes:
    """The first bytes of ``path`` (gunzipped), or none when it cannot be read."""
    try:
        with _open_binary(path, None) as stream:
            return stream.read(4)
    except (OSError, EOFError, zlib.error, KGLoadError):
        return b""


def _decode_utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise KGLoadError(
            f"the file is not UTF-8 (byte 0x{data[e.start]:02x} cannot be decoded); "
            + recode_hint(data[:2]),
            path,
            line,
        ) from e


_OX_MESSAGE = re.compile(r"^Parser error at line \d+ ((?:between )?columns? [^:]*):\s*(.*)$", re.S)


REMOTE_CONTEXT = (
    "a JSON-LD context is given by URL, and kgfuse fetches nothing over the network; put the "
    'context in the document itself ("@context": {...})'
)


def _names_a_remote_context(text: str) -> bool:
    """Whether a JSON-LD document gives a ``@context`` (or an ``@import`` in one) as a URL, which
    a JSON-LD processor fetches. Invalid JSON: False (the parser reports it)."""
    try:
        stack = [json.loads(text)]
    except (ValueError, RecursionError):
        return False
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for context in (node.get("@context"), node.get("@import")):
                contexts = context if isinstance(context, list) else [context]
                if any(isinstance(c, str) for c in contexts):
                    return True
            stack.extend(node.values())
    return False


def _oxigraph_error(e: SyntaxError, path: Path) -> KGLoadError:
    text = str(e.msg or e)
    m = _OX_MESSAGE.match(text)
    where, what = (m.group(1), m.group(2)) if m else ("", text)
    what = re.sub(r"\s*\(line \d+\)\s*$", "", what)
    if "UTF-8" in what:
        return KGLoadError(f"the file is not UTF-8; {recode_hint(_start(path))}", path, e.lineno)
    if "LoadDocumentCallback" in what:  # a "@context" or "@import" given as a URL
        return KGLoadError(REMOTE_CONTEXT, path, e.lineno)
    if where and not where.startswith("between"):
        where = "at " + where
    return KGLoadError(f"syntax error{' ' + where if where else ''}: {what}", path, e.lineno)


def _read_rdf_oxigraph(
    path: Path,
    fmt: str,
    builder: GraphBuilder,
    tag: str,
    progress: Progress | None,
    limits: ReadLimits,
) -> None:
    if fmt in FAST_FORMATS:
        # N-Triples and Turtle in kg/fastparse.py's subset skip pyoxigraph's per-triple objects
        with _open_binary(path, progress) as stream:
            triples = read_simple(stream, fmt, tag)
        if triples is not None:
            _add_triples(builder, triples, limits, path)
            return
        progress = None  # the bytes were counted once
    with _open_binary(path, progress) as stream:
        _parse_oxigraph(stream, path, fmt, builder, tag, limits)


def _add_triples(builder: GraphBuilder, triples: Triples, limits: ReadLimits, path: Path) -> None:
    """What kg/fastparse.py read, into ``builder``, in bulk; a literal over ``limits`` is
    refused as the pyoxigraph path refuses it (the first in the file)."""
    if triples.subjects:
        builder.add_indexed_edges(
            triples.entities,
            np.concatenate(triples.subjects),
            triples.predicates,
            np.concatenate(triples.relations),
            np.concatenate(triples.objects),
        )
    values = triples.literal_values
    if not values:
        return
    relations = np.concatenate(triples.literal_relations)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    names = _name_predicates(builder)
    for i in np.flatnonzero(lengths > limits.smallest).tolist():
        limits.check_literal(values[i], triples.predicates[relations[i]], names, path)
    builder.add_indexed_literals(
        triples.entities,
        np.concatenate(triples.literal_subjects),
        triples.predicates,
        relations,
        triples.forms,
        np.concatenate(triples.literal_forms),
        values,
    )


def _parse_oxigraph(
    stream: IO[bytes], path: Path, fmt: str, builder: GraphBuilder, tag: str, limits: ReadLimits
) -> None:
    import pyoxigraph as ox

    named, literal, blank = ox.NamedNode, ox.Literal, ox.BlankNode
    blank_keys: dict[str, str] = {}

    def key(term: Any) -> str:
        if type(term) is blank:
            k = blank_keys.get(term.value)
            if k is None:
                # renumbered by first appearance: anonymous nodes get random ids from the parser
                k = blank_keys[term.value] = f"_:{tag}b{len(blank_keys)}"
            return k
        raise KGLoadError("RDF-star quoted triples are not supported; flatten them first", path)

    add_literal = builder.add_literal
    short, names = limits.smallest, _name_predicates(builder)
    n3, default_graph = fmt == "n3", ox.DefaultGraph
    subjects: list[str] = []
    predicates: list[str] = []
    objects: list[str] = []
    try:
        for q in ox.parse(
            stream,
            getattr(ox.RdfFormat, OXIGRAPH_FORMATS[fmt]),
            base_iri=path.resolve().as_uri(),
        ):
            s, o = q.subject, q.object
            if n3 and type(q.graph_name) is not default_graph:
                raise KGLoadError(N3_FORMULA, path)
            sk = s.value if type(s) is named else key(s)
            if type(o) is literal:
                value = o.value
                if len(value) > short:
                    limits.check_literal(value, q.predicate.value, names, path)
                add_literal(sk, q.predicate.value, value, o.language, o.datatype.value)
                continue
            subjects.append(sk)
            predicates.append(q.predicate.value)
            objects.append(o.value if type(o) is named else key(o))
            if len(subjects) >= EDGE_BATCH:
                builder.add_edges(subjects, predicates, objects)
                subjects, predicates, objects = [], [], []
        builder.add_edges(subjects, predicates, objects)
    except SyntaxError as e:
        error = _oxigraph_error(e, path)
        if error.line is None:  # RDF/XML errors carry no position: let rdflib place it
            error = KGLoadError(error.reason, path, _locate_with_rdflib(path, fmt))
        raise error from e
    except ValueError as e:  # e.g. a JSON-LD context that would need the network
        raise KGLoadError(f"cannot parse as {fmt}: {e}", path) from e


def _read_rdf_rdflib(
    path: Path,
    fmt: str,
    builder: GraphBuilder,
    tag: str,
    progress: Progress | None,
    limits: ReadLimits | None = None,
) -> None:
    import rdflib

    with _open_binary(path, progress) as stream:
        data = stream.read()
    text = _decode_utf8(data, path)
    if fmt == "json-ld" and _names_a_remote_context(text):  # rdflib would fetch it
        raise KGLoadError(REMOTE_CONTEXT, path)
    dataset = rdflib.Dataset()
    try:
        dataset.parse(data=text, format=_RDFLIB_FORMATS[fmt], publicID=path.resolve().as_uri())
    except Exception as e:  # rdflib raises a different class per syntax
        line = _rdflib_line(e) or _line_of_fragment(text, _first_line(e))
        raise KGLoadError(f"syntax error: {_first_line(e)}", path, line) from e
    blank_keys: dict[str, str] = {}

    def key(term: object) -> str:
        if isinstance(term, rdflib.BNode):
            k = blank_keys.get(term)
            if k is None:
                k = blank_keys[term] = f"_:{tag}b{len(blank_keys)}"
            return k
        return str(term)

    limits = limits or ReadLimits()
    names = _name_predicates(builder)
    for s, p, o, _graph in dataset.quads((None, None, None, None)):
        if isinstance(s, rdflib.Graph) or isinstance(o, rdflib.Graph):  # an N3 formula
            raise KGLoadError(N3_FORMULA, path)
        _refuse_surrogates(path, s, p, o, getattr(o, "datatype", ""), getattr(o, "language", ""))
        if isinstance(o, rdflib.Literal):
            limits.check_literal(str(o), str(p), names, path)
            datatype = (
                str(o.datatype)
                if o.datatype
                else (vocab.RDF_LANG_STRING if o.language else vocab.XSD_STRING)
            )
            builder.add_literal(key(s), str(p), str(o), o.language, datatype)
        else:
            builder.add_edge(key(s), str(p), key(o))


def _refuse_surrogates(path: Path, *terms: object) -> None:
    """rdflib decodes a ``\\uD800`` escape (or JSON's) into a lone surrogate, which no UTF-8
    file, and so no compiled KG, can hold; oxigraph refuses such escapes itself."""
    text = "".join(str(t or "") for t in terms)
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise KGLoadError(
            f"an escape gives the lone surrogate U+{ord(text[e.start]):04X}, which is not a "
            "character; write the character itself, or its \\U escape (e.g. \\U0001F600)",
            path,
        ) from None


def _locate_with_rdflib(path: Path, fmt: str) -> int | None:
    if fmt == "json-ld":  # rdflib would fetch the URL of a remote @context: the JSON's line only
        return _json_error_line(path)
    try:
        _read_rdf_rdflib(path, fmt, GraphBuilder(), "x", None)
    except KGLoadError as e:
        return e.line
    return None


def _json_error_line(path: Path) -> int | None:
    """The line of the first JSON syntax error of ``path`` (None: valid JSON, or unreadable)."""
    try:
        with _open_binary(path, None) as stream:
            json.loads(stream.read())
    except json.JSONDecodeError as e:
        return e.lineno
    except (OSError, ValueError, RecursionError, EOFError, zlib.error):
        return None
    return None


def _line_of_fragment(text: str, message: str) -> int | None:
    """Line of the text a message quotes after its last ': ' (rdflib's N-Triples errors)."""
    fragment = message.rsplit(": ", 1)[-1].strip()
    at = text.find(fragment) if len(fragment) >= 3 else -1
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _rdflib_line(e: Exception) -> int | None:
    for attr in ("lines", "lineno", "line"):
        value = getattr(e, attr, None)
        if isinstance(value, int):
            return value + 1 if attr == "lines" else value
    get_line = getattr(e, "getLineNumber", None)
    if callable(get_line):
        return int(get_line())
    m = re.search(r"line (\d+)", str(e))
    return int(m.group(1)) if m else None


def is_iri_cell(name: str) -> bool:
    """Whether a delimited file's cell already is an IRI (``<...>`` or ``http://...``)."""
    name = name.strip()
    return (name.startswith("<") and name.endswith(">")) or bool(
        re.match(r"^(https?|urn|ftp|file):", name)
    )


def name_to_iri(name: str, base: str, kind: str) -> str:
    """IRI for a plain name from a delimited file; a name that already is an IRI is kept."""
    name = name.strip()
    if name.startswith("<") and name.endswith(">"):
        return name[1:-1]
    if is_iri_cell(name):
        return name
    return f"{base}{kind}/{quote('_'.join(name.split()), safe='')}"


_ROW = reprlib.Repr()  # a row as error messages quote it: long cells and rows cut short
_ROW.maxlist, _ROW.maxstring = 6, 80


def _read_delimited(
    path: Path, fmt: str, builder: GraphBuilder, progress: Progress | None, limits: ReadLimits
) -> None:
    with _open_binary(path, progress) as stream:
        # a byte-order mark (Excel's "CSV UTF-8") is no part of the first name or the header
        text = _decode_utf8(stream.read(), path).removeprefix("\ufeff")
    base = builder.config.base_iri
    delimiter = "\t" if fmt == "tsv" else ","
    first = True
    rows = numbered_rows(
        io.StringIO(text, newline=""),
        delimiter,
        lambda line, problem: KGLoadError(problem, path, line),
    )
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if first:
            first = False
            if tuple(c.strip().lower() for c in row) in _HEADERS:
                continue
        if len(row) != 3:
            raise KGLoadError(
                f"expected 3 columns (head, relation, tail) but found {len(row)}: {_ROW.repr(row)}",
                path,
                line,
            )
        head, relation, tail = (c.strip() for c in row)
        for cell in (head, relation, tail):
            limits.check_label(cell, path, line)
        if not head or not relation or not tail:
            raise KGLoadError(
                f"empty cell in row {_ROW.repr(row)}; every row needs head, relation and tail",
                path,
                line,
            )
        h = name_to_iri(head, base, "entity")
        r = name_to_iri(relation, base, "relation")
        t = name_to_iri(tail, base, "entity")
        builder.add_edge(h, r, t)
        # only a plain name names what it stands for: an IRI cell refers to a relation or an
        # entity that keeps its own label (from its triples, or its IRI's local name)
        if not is_iri_cell(relation):
            builder.name_relation(r, " ".join(relation.split()))
        for name, iri in ((head, h), (tail, t)):
            if not is_iri_cell(name):
                builder.add_literal(iri, vocab.RDFS_LABEL, name, None, vocab.XSD_STRING)
