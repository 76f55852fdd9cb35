"""What a triples file may hold: no XML entity declarations, bounded JSON-LD nesting, and
literals of bounded length.

An RDF/XML file may declare entities in its DOCTYPE; nested ones expand exponentially (the
"billion laughs": under a kilobyte that expands to gigabytes), and both RDF/XML parsers kgfuse
uses expand them. `refuse_xml_entities` reads an RDF/XML file's prolog with expat and refuses an
internal DTD subset before any parser sees the file (the same rule as defusedxml's
``forbid_dtd``, applied to a parser defusedxml cannot wrap). pyoxigraph's JSON-LD parser
recurses once per nested object and overflows its stack (a segmentation fault that kills the
process) near 4,000 levels, from a file of 150 KB; `refuse_deep_json` measures the nesting first.
`ReadLimits` bounds that depth, the length of every literal, and more tightly of every label and
alias, which the entity linker indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.parsers import expat

import numpy as np

from kg.errors import KGFuseError, KGLoadError

_PROLOG_CHUNK = 1 << 16
_JSON_OTHER = bytes(b for b in range(256) if b not in b'"{}[]')  # dropped before measuring
_DEPTH_SLICE = 1 << 22  # quotes and brackets measured at once


@dataclass(frozen=True)
class ReadLimits:
    """The largest values a triples file may hold; a bigger one is refused, naming the limit.

    Attributes:
        max_literal_chars: characters in one literal (a description, an attribute value).
        max_label_chars: characters in one label or alias (a literal of a label or alias
            predicate, or a name in a TSV/CSV file); the linker matches every one of them.
        max_json_depth: JSON objects and arrays nested in a JSON-LD file (real documents nest
            a few levels; the flattened form three).
    """

    max_literal_chars: int = 1_000_000
    max_label_chars: int = 10_000
    max_json_depth: int = 256

    def __post_init__(self) -> None:
        bad = [
            f"{name} must be at least 1 (got {value!r})"
            for name, value in vars(self).items()
            if not isinstance(value, int) or isinstance(value, bool) or value < 1
        ]
        if bad:
            raise KGFuseError("invalid read limits: " + "; ".join(bad))

    @property
    def smallest(self) -> int:
        """Literals no longer than this pass every limit (one comparison in a parser's loop)."""
        return min(self.max_literal_chars, self.max_label_chars)

    def check_literal(
        self,
        value: str,
        predicate: str,
        label_predicates: frozenset[str],
        path: str | Path | None,
        line: int | None = None,
    ) -> None:
        """Raise `KGLoadError` when ``value`` is longer than its predicate's limit.

        Args:
            value: the literal's text.
            predicate: its predicate IRI; label and alias predicates take ``max_label_chars``.
            label_predicates: the label and alias predicates of the KG config.
            path: the file it came from, named in the error (None: not from a file).
            line: its line in that file, when the parser knows it.
        """
        if predicate in label_predicates:
            self.check_label(value, path, line, f"label ({predicate})")
        elif len(value) > self.max_literal_chars:
            raise KGLoadError(
                f"a literal of {len(value):,} characters (predicate {predicate}) is over the "
                f"limit of {self.max_literal_chars:,} (max_literal_chars); shorten it, or raise "
                "the limit (`kgfuse kg load --max-literal-chars N`)",
                path,
                line,
            )

    def check_label(
        self, value: str, path: str | Path | None, line: int | None = None, what: str = "name"
    ) -> None:
        """Raise `KGLoadError` when a label, alias or delimited-file name is over the limit."""
        if len(value) > self.max_label_chars:
            raise KGLoadError(
                f"a {what} of {len(value):,} characters is over the limit of "
                f"{self.max_label_chars:,} (max_label_chars); shorten it, or raise the limit "
                "(`kgfuse kg load --max-label-chars N`)",
                path,
                line,
            )


def refuse_deep_json(stream: IO[bytes], path: str | Path, max_depth: int) -> None:
    """Refuse a JSON document whose objects and arrays nest deeper than ``max_depth``.

    Reads the whole of ``stream`` (in a fifth of the time pyoxigraph takes to parse it); brackets
    inside strings do not count. Malformed JSON passes unless it nests too deep: the JSON-LD
    parser then reports the syntax error.

    Raises:
        KGLoadError: naming the file and the limit.
    """
    # Escaped backslashes, then escaped quotes, go first; of the rest only quotes and brackets
    # matter (byte-wise: no UTF-8 multi-byte sequence holds an ASCII byte).
    data = stream.read().replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(data.translate(None, _JSON_OTHER), dtype=np.uint8)
    depth, quotes = 0, 0
    for lo in range(0, len(marks), _DEPTH_SLICE):
        part = marks[lo : lo + _DEPTH_SLICE]
        is_quote = part == ord('"')
        parity = (quotes + np.cumsum(is_quote)) % 2  # odd: inside a string
        outside = (parity == 0) & ~is_quote
        opens = outside & ((part == ord("{")) | (part == ord("[")))
        closes = outside & ((part == ord("}")) | (part == ord("]")))
        running = depth + np.cumsum(opens.astype(np.int64) - closes)
        if int(running.max()) > max_depth:
            raise KGLoadError(
                f"the JSON nests objects and arrays more than {max_depth} deep (max_json_depth); "
                "a JSON-LD parser recursing that deep can overflow its stack. Flatten the "
                "document (JSON-LD's flattened form nests three levels)",
                path,
            )
        depth, quotes = int(running[-1]), quotes + int(is_quote.sum())


class _RootReached(Exception):
    """The prolog ended without a DTD subset: the file may be parsed."""


_ENTITY = b"<!entity"


def refuse_xml_entities(stream: IO[bytes], path: str | Path) -> None:
    """Refuse an RDF/XML document whose DOCTYPE has an internal subset (entity declarations).

    Reads ``stream`` up to the root element only; the caller reopens the file to parse it. A
    DOCTYPE without an internal subset passes (neither parser fetches external DTDs). When
    expat cannot read the prolog (an unknown encoding, a token it rejects), the RDF/XML parser
    will most likely refuse the file too; lest a more lenient one expand what expat skipped,
    the whole file is then refused if it holds ``<!ENTITY`` anywhere.

    Raises:
        KGLoadError: naming the file and, when expat read it, the line of the DOCTYPE.
    """
    parser = expat.ParserCreate()

    def doctype(
        name: str, system_id: str | None, public_id: str | None, has_internal_subset: bool
    ) -> None:
        if has_internal_subset:
            raise _refused(path, parser.CurrentLineNumber)

    def root(name: str, attributes: object) -> None:
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = root
    chunk = b""
    try:
        while chunk := stream.read(_PROLOG_CHUNK):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _RootReached:
        return
    except (expat.ExpatError, ValueError, LookupError):  # expat gave up on the prolog
        _refuse_any_entity(stream, chunk, path)


def _refuse_any_entity(stream: IO[bytes], before: bytes, path: str | Path) -> None:
    """Refuse ``before`` (the chunk expat gave up on) and the rest of ``stream`` if they hold
    ``<!ENTITY`` in any letter case."""
    carry = before
    while True:
        window = (carry + stream.read(_PROLOG_CHUNK)).lower()
        if _ENTITY in window:
            raise _refused(path, None)
        if len(window) == len(carry):
            return
        carry = window[-len(_ENTITY) :]


def _refused(path: str | Path, line: int | None) -> KGLoadError:
    return KGLoadError(
        "the DOCTYPE declares entities (an internal DTD subset); entity declarations are "
        "refused, since nested ones expand without bound (the 'billion laughs'). Write the "
        "values out in place of the entity references (e.g. `xmllint --noent FILE`) or "
        "convert the file to Turtle",
        path,
        line,
    )
