"""Triples into and out of triple stores: bulk loads into an on-disk Oxigraph store, and a
whole SPARQL endpoint paged into a compiled in-memory graph (for KGs that fit)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kg import vocab
from kg.compile import GraphBuilder
from kg.config import KGConfig
from kg.errors import KGStoreError
from kg.files import make_folder
from kg.graph import KnowledgeGraph
from kg.parse import OXIGRAPH_FORMATS
from kg.sparql import Select
from kg.sparql_client import SparqlClient


def bulk_load(files: Sequence[str | Path], store: str | Path, format: str | None = None) -> int:
    """Load RDF files into the on-disk Oxigraph store ``store`` with pyoxigraph's bulk loader
    (bounded memory: it writes sorted runs to disk); returns the quads the store then holds.
    RDF/XML that declares entities and deeply nested JSON-LD are refused (kg/guards.py)."""
    import gzip

    import pyoxigraph

    from kg.formats import detect_format
    from kg.guards import ReadLimits, refuse_deep_json, refuse_xml_entities
    from kg.load import check_files

    paths = check_files(files, format, allow_empty=True)  # an empty file adds no quad
    make_folder(store)  # a file in the way or no permission: named, not Oxigraph's "IO error"
    try:
        target = pyoxigraph.Store(str(store))
    except OSError as e:  # held by another process, or not a store
        if "lock" in str(e).lower():  # RocksDB's LOCK file: one process opens a store to write
            raise KGStoreError(
                f"cannot open the store {store}: another process has it open (a kgfuse kg load "
                "or a program reading it); let it end first, or choose another --store"
            ) from e
        raise KGStoreError(f"cannot open the store {store}: {e}; choose another --store") from e
    for path in paths:
        name = detect_format(path, format)
        if name not in OXIGRAPH_FORMATS:
            raise KGStoreError(
                f"{path}: a triple store takes RDF only (got {name}); "
                "compile delimited files with --backend memory"
            )
        rdf_format = getattr(pyoxigraph.RdfFormat, OXIGRAPH_FORMATS[name])
        if name in ("xml", "json-ld"):
            with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as head:
                if name == "xml":
                    refuse_xml_entities(head, path)  # type: ignore[arg-type]  # GzipFile is IO[bytes]
                else:
                    refuse_deep_json(head, path, ReadLimits().max_json_depth)  # type: ignore[arg-type]
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as stream:
                    target.bulk_load(stream, rdf_format)  # type: ignore[arg-type]  # GzipFile is IO[bytes]
            else:
                target.bulk_load(path=str(path), format=rdf_format)
        except (OSError, SyntaxError, ValueError) as e:
            raise KGStoreError(f"{path}: bulk load into {store} failed: {e}") from e
    target.flush()
    return len(target)


def load_endpoint(
    endpoint: str, config: KGConfig | None = None, page_size: int = 100_000, **options: Any
) -> KnowledgeGraph:
    """Every triple of ``endpoint`` paged out (``ORDER BY``, ``LIMIT``/``OFFSET``) and compiled,
    for a KG that fits in memory. ``options`` go to `SparqlClient` (timeout_s, retries,
    backoff_s)."""
    source = SparqlClient(endpoint, **options)
    builder = GraphBuilder(config or KGConfig())

    def key(term: dict[str, str]) -> str:
        return term["value"] if term["type"] == "uri" else "_:" + term["value"]

    query = Select("SELECT ?s ?p ?o WHERE { ?s ?p ?o } ORDER BY ?s ?p ?o")
    for offset in itertools.count(0, page_size):
        page = source.select(query.page(page_size, offset))
        edges = [r for r in page if r["o"]["type"] != "literal"]
        if edges:
            builder.add_edges(
                [key(r["s"]) for r in edges],
                [r["p"]["value"] for r in edges],
                [key(r["o"]) for r in edges],
            )
        for r in page:
            o = r["o"]
            if o["type"] == "literal":
                datatype = o.get("datatype", vocab.XSD_STRING)
                builder.add_literal(
                    key(r["s"]), r["p"]["value"], o["value"], o.get("xml:lang"), datatype
                )
        if len(page) < page_size:
            break
    if builder.statements == 0:
        raise KGStoreError(f"the SPARQL endpoint {endpoint} holds no triples")
    return builder.build(sources=[endpoint])
