"""Add triples to a compiled graph, so a running service can learn new facts without retraining.

A `KnowledgeGraph` is immutable: `extend` and `extend_triples` return a new graph and leave the
old one untouched. Both replay the old graph into a fresh `GraphBuilder` (`builder_from_graph`),
feed it the new triples and compile again, so the result is laid out exactly like a graph loaded
from scratch.

Entity ids are dense and sorted by IRI, so adding an entity shifts the ids of every entity whose
IRI sorts after it. Callers holding ids of the old graph (cached node features, linker tables)
must map them by IRI; `id_map` gives the whole old-id -> new-id table at once.

Exactness of the replay: ``builder_from_graph(g).build(g.sources)`` has the same fingerprint as
``g`` (entities, edges, types, labels, aliases, descriptions, attributes and relation names all
round-trip). ``extend(kg.load(a), b)`` equals ``kg.load([a, b])`` except where the new files give
an entity that already has a display label (or description) a competing one: the old display
label is replayed as if it came from the best label predicate in the best language, so it stays
the display label unless the new label has that same best rank and sorts before it (the new one
becomes an alias otherwise). A new description of an already described entity is joined to the
old text, in the builder's usual (rank, text) order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kg import vocab
from kg.compile import GraphBuilder
from kg.config import KGConfig
from kg.errors import KGLoadError, KGReadOnlyError
from kg.graph import KnowledgeGraph
from kg.guards import ReadLimits
from kg.load import check_files, read_files
from kg.parse import EDGE_BATCH, PARSERS
from kg.strings import StringTable

__all__ = ["builder_from_graph", "extend", "extend_triples", "id_map"]

_IRI_OBJECT = re.compile(r"^https?://", re.IGNORECASE)


# ------------------------------------------------------------------ replay


def builder_from_graph(graph: KnowledgeGraph) -> GraphBuilder:
    """A builder holding everything ``graph`` holds, ready for more triples.

    ``builder_from_graph(graph).build(graph.sources)`` reproduces a graph with the same
    fingerprint as ``graph``. The graph itself is only read.

    Args:
        graph: the compiled graph to replay; its config becomes the builder's.

    Returns:
        A `GraphBuilder` with the graph's entities (isolated ones included), triples, types,
        labels, aliases, descriptions, attributes and relation names.
    """
    builder = GraphBuilder(graph.config)
    iris = list(graph.entities)
    for iri in iris:  # registers isolated entities too
        builder.entity(iri)
    _replay_edges(graph, builder, iris)
    if not graph.config.type_edges:  # with type edges on, replaying the edges re-creates types
        _replay_types(graph, builder, iris)
    _replay_names(graph, builder, iris)
    _replay_descriptions(graph, builder, iris)
    _replay_attributes(graph, builder, iris)
    _replay_relation_names(graph, builder)
    return builder


def check_graph(graph: object, call: str) -> None:
    """Refuse what is not a compiled graph: a path (with `kg.open`), a graph in a triple store
    (read-only here) or anything else, each naming the fix.

    Raises:
        KGReadOnlyError: a graph read from a triple store.
        TypeError: anything else that is not a `KnowledgeGraph`.
    """
    if isinstance(graph, KnowledgeGraph):
        return
    if isinstance(graph, str | os.PathLike):
        raise TypeError(
            f"{call} takes a compiled graph, not the path {str(graph)!r}: pass "
            f"kg.open({str(graph)!r}) (a compiled folder) or kg.load({str(graph)!r}) (triples)"
        )
    if hasattr(type(graph), "names_graph") and getattr(graph, "compiled", 0) is None:
        raise KGReadOnlyError(
            f"{call} needs a compiled graph; this one is read from a triple store: add the "
            "triples to the store itself"
        )
    hint = (
        " (graph.compiled is None for a graph read from a triple store: add the triples to the "
        "store itself)"
        if graph is None
        else ""
    )
    raise TypeError(
        f"{call} takes a compiled graph (kg.load or kg.open), not {type(graph).__name__}{hint}"
    )


def _owners(indptr: np.ndarray) -> np.ndarray:
    """Row id of each item of a CSR-style layout."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


def _add_edges_in_batches(
    builder: GraphBuilder,
    iris: np.ndarray,
    subjects: np.ndarray,
    predicates: Sequence[str] | np.ndarray,
    objects: np.ndarray,
) -> None:
    """Hand id triples to ``builder.add_edges`` as IRI lists, ``EDGE_BATCH`` at a time."""
    for lo in range(0, len(subjects), EDGE_BATCH):
        hi = lo + EDGE_BATCH
        builder.add_edges(
            iris[subjects[lo:hi]].tolist(),
            list(predicates[lo:hi]),
            iris[objects[lo:hi]].tolist(),
        )


def _replay_edges(graph: KnowledgeGraph, builder: GraphBuilder, iris: list[str]) -> None:
    """Forward CSR entries (relation ``< R``): each triple once."""
    forward = graph.edge_relations < graph.num_relations
    subjects = _owners(graph.indptr)[forward]
    relations = graph.edge_relations[forward]
    objects = graph.neighbors[forward]
    relation_iris = np.array(list(graph.relations), dtype=object)
    predicates = relation_iris[relations] if len(relations) else np.empty(0, dtype=object)
    _add_edges_in_batches(
        builder, np.array(iris, dtype=object), subjects, predicates.tolist(), objects
    )


def _replay_types(graph: KnowledgeGraph, builder: GraphBuilder, iris: list[str]) -> None:
    """Type facts through the first type predicate (kept off the edges, as when compiled)."""
    if not len(graph.type_ids):
        return
    predicate = graph.config.type_predicates[0]
    subjects = _owners(graph.type_indptr)
    _add_edges_in_batches(
        builder,
        np.array(iris, dtype=object),
        subjects,
        [predicate] * len(subjects),
        graph.type_ids,
    )


def _language_tag(want: str) -> str | None:
    """The literal language tag that a ``KGConfig.languages`` entry accepts ("" = no tag)."""
    return want or None


def _best_language(config: KGConfig) -> str | None:
    """A language tag of the best rank the config accepts."""
    return _language_tag(config.languages[0]) if config.languages else None


def _alias_channel(config: KGConfig) -> tuple[str, str | None]:
    """Predicate and language through which aliases replay without outranking the display label.

    The display label replays through the best label predicate in the best language. Aliases
    take an alias predicate when there is one, else a worse label predicate, else a worse
    language. Failing all three, every name came from one label predicate at one rank, so the
    display label was the smallest name and replaying all names at that rank keeps it.
    """
    best = _best_language(config)
    if config.alias_predicates:
        return config.alias_predicates[0], best
    if len(config.label_predicates) > 1:
        return config.label_predicates[1], best
    if len(config.languages) > 1:
        return config.label_predicates[0], _language_tag(config.languages[1])
    return config.label_predicates[0], best


def _replay_names(graph: KnowledgeGraph, builder: GraphBuilder, iris: list[str]) -> None:
    """Display labels and aliases; the display label stays the display label."""
    counts = np.diff(graph.alias_indptr)
    named = np.flatnonzero(counts).tolist()
    if not named:
        return
    config = graph.config
    best = _best_language(config)
    alias_predicate, alias_language = _alias_channel(config)
    labels, aliases = list(graph.labels), list(graph.aliases)
    bounds = graph.alias_indptr.tolist()
    add = builder.add_literal
    for i in named:
        label = labels[i]
        if label:
            add(iris[i], config.label_predicates[0], label, best, vocab.XSD_STRING)
        for name in aliases[bounds[i] : bounds[i + 1]]:
            if name != label:
                add(iris[i], alias_predicate, name, alias_language, vocab.XSD_STRING)


def _replay_descriptions(graph: KnowledgeGraph, builder: GraphBuilder, iris: list[str]) -> None:
    """Each compiled description (possibly several joined) as one best-ranked literal."""
    described = np.flatnonzero(graph.description_lengths()).tolist()
    if not described:
        return
    predicate = graph.config.description_predicates[0]
    best = _best_language(graph.config)
    texts = list(graph.descriptions)  # one pass decodes faster than many look-ups
    for i in described:
        builder.add_literal(iris[i], predicate, texts[i], best, vocab.XSD_STRING)


def _replay_attributes(graph: KnowledgeGraph, builder: GraphBuilder, iris: list[str]) -> None:
    """Other literals, with their datatype or ``@lang`` tag."""
    owners = _owners(graph.attribute_indptr).tolist()
    columns = (graph.attribute_predicates, graph.attribute_values, graph.attribute_datatypes)
    for owner, predicate, value, kind in zip(owners, *columns, strict=True):
        if kind.startswith("@"):
            builder.add_literal(iris[owner], predicate, value, kind[1:], vocab.RDF_LANG_STRING)
        else:
            builder.add_literal(iris[owner], predicate, value, None, kind)


def _replay_relation_names(graph: KnowledgeGraph, builder: GraphBuilder) -> None:
    for iri, name in zip(graph.relations, graph.relation_names, strict=True):
        if name:
            builder.name_relation(iri, name)


# ------------------------------------------------------------------ extend from files


def extend(
    graph: KnowledgeGraph,
    paths: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    parser: str = "oxigraph",
    limits: ReadLimits | None = None,
) -> KnowledgeGraph:
    """A new graph: ``graph`` plus the triples of ``paths``, compiled with ``graph.config``.

    The old graph is left untouched. Entity ids of the result are sorted by IRI like any
    compiled graph, so existing entities may get new ids: map old ids with `id_map`.

    Args:
        graph: the compiled graph to extend.
        paths: one triples file or several (any format `kg.load` reads, ``.gz`` included).
        format: force one format for every file (else each file's extension decides).
        parser: "oxigraph" (fast) or "rdflib" (reference) for RDF syntaxes.
        limits: the longest literal and label the new files may hold (default `ReadLimits()`).

    Returns:
        The extended graph; its ``sources`` are the old sources followed by the new file names.

    Raises:
        KGLoadError: a missing, empty, unreadable or malformed file (naming file and line), a
            file without triples, RDF/XML that declares entities, or a literal over ``limits``.
    """
    check_graph(graph, "kg.extend")
    if parser not in PARSERS:
        raise KGLoadError(f"unknown parser {parser!r}; choose one of {', '.join(PARSERS)}")
    if isinstance(paths, KnowledgeGraph):
        raise TypeError(
            "kg.extend(graph, paths) adds triples files to a graph; to add another graph's "
            "triples, save it in a triples format or pass its triples to kg.extend_triples"
        )
    files = check_files(paths, format)
    builder = builder_from_graph(graph)
    first = _first_free_file_tag(graph.entities, len(graph.sources))
    read_files(builder, files, format=format, parser=parser, first_tag=first, limits=limits)
    return builder.build(sources=[*graph.sources, *(p.name for p in files)])


def _first_free_file_tag(entities: StringTable, start: int) -> int:
    """Smallest ``n >= start`` such that no blank node of the graph is keyed ``_:f<n>b...``.

    `kg.load` tags the blank nodes of its n-th file ``f<n>``; starting at the number of sources
    makes ``extend(kg.load(a), b)`` tag ``b`` as ``kg.load([a, b])`` would.
    """
    n = start
    while _has_prefix(entities, f"_:f{n}b"):
        n += 1
    return n


def _has_prefix(table: StringTable, prefix: str) -> bool:
    """Whether a table sorted by code point holds a string starting with ``prefix``."""
    i = table.lower_bound(prefix)
    return i < len(table) and table.raw(i).startswith(prefix.encode("utf-8"))


# ------------------------------------------------------------------ extend from rows


class _Row(NamedTuple):
    subject: str
    predicate: str
    object: str
    is_iri: bool


def extend_triples(
    graph: KnowledgeGraph,
    triples: Sequence[tuple[str, str, str]],
    limits: ReadLimits | None = None,
) -> KnowledgeGraph:
    """A new graph: ``graph`` plus ``(subject IRI, predicate IRI, object)`` rows.

    An object is an entity IRI when it starts with ``http://`` or ``https://`` or is wrapped in
    ``<...>``; anything else is a plain literal (no language tag, ``xsd:string``), which the
    config routes like the loader does: label, alias, description or attribute by predicate.
    Subjects and predicates may be wrapped in ``<...>`` too. Every row is checked before any
    work is done. ``sources`` stay those of ``graph``.

    Args:
        graph: the compiled graph to extend (left untouched).
        triples: the new facts.
        limits: the longest literal and label accepted (default `ReadLimits()`).

    Returns:
        The extended graph; map old entity ids with `id_map`.

    Raises:
        KGLoadError: no rows, a row that is not three strings or has an IRI that is empty or
            holds whitespace (the message names the row's index and content), or a literal
            longer than ``limits`` allow.
    """
    check_graph(graph, "kg.extend_triples")
    if isinstance(triples, str | bytes) or (
        isinstance(triples, tuple)
        and len(triples) == 3
        and all(isinstance(c, str) for c in triples)
    ):
        raise KGLoadError(
            f"triples are a list of (subject, predicate, object) rows, not one {triples!r}: "
            f"pass [{triples!r}]"
        )
    rows = [_parse_row(i, row) for i, row in enumerate(triples)]
    if not rows:
        raise KGLoadError("no triples given; pass at least one (subject, predicate, object) row")
    limits = limits or ReadLimits()
    names = frozenset(graph.config.label_predicates) | frozenset(graph.config.alias_predicates)
    for r in rows:
        if not r.is_iri:
            limits.check_literal(r.object, r.predicate, names, None)
    builder = builder_from_graph(graph)
    edges = [r for r in rows if r.is_iri]
    if edges:
        builder.add_edges(
            [r.subject for r in edges], [r.predicate for r in edges], [r.object for r in edges]
        )
    for r in rows:
        if not r.is_iri:
            builder.add_literal(r.subject, r.predicate, r.object, None, vocab.XSD_STRING)
    return builder.build(sources=list(graph.sources))


def _parse_row(index: int, row: object) -> _Row:
    """Validate one input row; objects that look like IRIs become entities."""
    if (
        isinstance(row, (str, bytes))
        or not isinstance(row, Sequence)
        or len(row) != 3
        or not all(isinstance(c, str) for c in row)
    ):
        raise KGLoadError(
            f"row {index} {row!r}: expected three strings (subject, predicate, object)"
        )
    subject, predicate, obj = row
    for cell in row:
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError as e:
            raise KGLoadError(
                f"row {index}: {cell[max(0, e.start - 40) : e.start + 1]!r} ends in the lone surrogate "
                f"U+{ord(cell[e.start]):04X}, which is not a character; send text as UTF-8"
            ) from None
    s = _checked_iri(index, row, "subject", subject)
    p = _checked_iri(index, row, "predicate", predicate)
    if _IRI_OBJECT.match(obj) or (obj.startswith("<") and obj.endswith(">")):
        return _Row(s, p, _checked_iri(index, row, "object", obj), True)
    return _Row(s, p, obj, False)


def _checked_iri(index: int, row: Sequence[str], role: str, value: str) -> str:
    """The IRI in ``value`` (``<...>`` unwrapped); refuses an empty one or one with whitespace."""
    iri = value.strip()
    if iri.startswith("<") and iri.endswith(">"):
        iri = iri[1:-1]
    if not iri or any(c.isspace() for c in iri):
        raise KGLoadError(
            f"row {index} {row!r}: the {role} {value!r} is not an IRI "
            "(it must be non-empty and hold no spaces)"
        )
    return iri


# ------------------------------------------------------------------ ids


def id_map(old: KnowledgeGraph, new: KnowledgeGraph) -> np.ndarray:
    """For each entity id of ``old``, its id in ``new`` (matched by IRI; -1 when absent).

    Args:
        old: the graph whose ids a caller holds.
        new: a graph built from it, e.g. by `extend`.

    Returns:
        int64 array of length ``old.num_entities``.
    """
    check_graph(old, "kg.id_map")
    check_graph(new, "kg.id_map")
    return _positions(old.entities, new.entities)


def _positions(queries: Iterable[str], table: StringTable) -> np.ndarray:
    index = {iri: i for i, iri in enumerate(table)}
    found = [index.get(iri, -1) for iri in queries]
    return np.asarray(found, dtype=np.int64)
