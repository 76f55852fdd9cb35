"""`kg.load`: parse one or more triples files into one compiled `KnowledgeGraph`."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kg.compile import GraphBuilder
from kg.config import KGConfig
from kg.errors import KGLoadError
from kg.files import as_path
from kg.formats import detect_format
from kg.graph import KnowledgeGraph, load_graph
from kg.guards import ReadLimits
from kg.parse import read_file
from kg.storage import META_FILE


def load(
    paths: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    config: KGConfig | None = None,
    parser: str = "oxigraph",
    progress: Callable[[int], None] | None = None,
    limits: ReadLimits | None = None,
) -> KnowledgeGraph:
    """Parse triples files (any mix of RDF syntaxes and TSV/CSV) into one compiled graph.

    Args:
        paths: one file or several; ``.gz`` files are read transparently.
        format: force one format for every file (else each file's extension decides).
        config: which predicates carry labels, descriptions and types; the delimited base IRI.
        parser: "oxigraph" (fast Rust parser) or "rdflib" (the reference) for RDF syntaxes.
        progress: called with the number of bytes read, for progress bars.
        limits: the longest literal and label accepted (default `ReadLimits()`).

    Returns:
        the compiled graph. Files without a triple (empty, or only comments, prefixes or a
        header row) are valid and add nothing: with no triple at all the graph is empty (0
        entities, 0 triples), and it saves, reopens and answers queries as such.

    Raises:
        KGLoadError: a missing, unreadable or malformed file, naming file and line;
            RDF/XML that declares entities; a literal or label longer than ``limits`` allow.
    """
    files = check_files(paths, format, allow_empty=True)
    if limits is not None and not isinstance(limits, ReadLimits):
        raise TypeError(f"limits is a kg.guards.ReadLimits, not {type(limits).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress is a function of the bytes read, not {progress!r}")
    with without_gc():
        builder = GraphBuilder(config)
        read_files(
            builder,
            files,
            format=format,
            parser=parser,
            progress=progress,
            limits=limits,
            allow_empty=True,
        )
        return builder.build(sources=[p.name for p in files])


@contextmanager
def without_gc() -> Iterator[None]:
    """The cycle collector off while a KG is read: loading makes millions of objects and no
    cycle, and each full collection walks them all (it took half of a 1M-triple load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def open_or_load(paths: str | Path | Sequence[str | Path]) -> KnowledgeGraph:
    """One compiled KG folder (reloaded), or triples files (compiled in memory now)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if len(paths) == 1 and as_path(paths[0], "the KG").is_dir():
        return load_graph(paths[0])
    return load(paths)


def check_files(
    paths: str | Path | Sequence[str | Path], format: str | None = None, allow_empty: bool = False
) -> list[Path]:
    """The files as paths, refused before any parsing when one is plainly unusable (or, unless
    ``allow_empty``, empty: adding an empty file to a KG is most likely a mistake)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise KGLoadError("no triples files given; pass at least one file")
    if not isinstance(paths, Iterable) or isinstance(paths, bytes):
        raise TypeError(
            f"triples files are a path or a list of paths, not {type(paths).__name__} {paths!r}"
        )
    files = [as_path(p, "each triples file") for p in paths]
    for path in files:
        if not path.exists():
            raise KGLoadError("file not found", path)
        if (path / META_FILE).is_file():
            raise KGLoadError(
                f"a compiled KG folder, not a triples file: open it with kg.open({str(path)!r})",
                path,
            )
        if not path.is_file():
            raise KGLoadError("not a regular file (pass the triples files themselves)", path)
        if not allow_empty and path.stat().st_size == 0:
            raise KGLoadError("the file is empty; it must hold at least one triple", path)
        detect_format(path, format)
    return files


def read_files(
    builder: GraphBuilder,
    files: Sequence[Path],
    *,
    format: str | None = None,
    parser: str = "oxigraph",
    progress: Callable[[int], None] | None = None,
    first_tag: int = 0,
    limits: ReadLimits | None = None,
    allow_empty: bool = False,
) -> None:
    """Parse ``files`` into ``builder``; file ``n`` tags its blank nodes ``f<first_tag + n>``.
    A file without a triple is refused unless ``allow_empty``."""
    for n, path in enumerate(files):
        before = builder.statements
        fmt = detect_format(path, format)
        tag = f"f{first_tag + n}"
        read_file(path, fmt, builder, tag=tag, parser=parser, progress=progress, limits=limits)
        if not allow_empty and builder.statements == before:
            raise KGLoadError("no triples found in this file", path)
