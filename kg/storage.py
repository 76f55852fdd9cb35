"""Save a compiled graph to a folder and load it back, with no pickle and no re-parsing.

Layout of a compiled KG folder:
    kg.json              format version, fingerprint, compile config, sources, counts
    index.safetensors    every array; a string table is two arrays, ``NAME.blob`` + ``NAME.offsets``

Writes are atomic: the folder is assembled under a temporary name beside the target and renamed
into place, so a reader never sees half a graph and a failed write leaves the old one intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kg.errors import KGFuseError, KGStoreError
from kg.files import as_path, atomic_directory, read_json, refuse_foreign_folder
from kg.strings import StringTable

if TYPE_CHECKING:
    from kg.graph import KnowledgeGraph

FORMAT = "kgfuse-kg"
FORMAT_VERSION = 1
META_FILE = "kg.json"
# a folder holding one of these is a KG kgfuse wrote (compiled, or a triple store's reference)
KG_MARKERS = (META_FILE, "store.json")
INDEX_FILE = "index.safetensors"

# Arrays and string tables that make up a compiled graph, in save order.
ARRAY_FIELDS = (
    "indptr",
    "neighbors",
    "edge_relations",
    "alias_indptr",
    "type_indptr",
    "type_ids",
    "attribute_indptr",
)
STRING_FIELDS = (
    "entities",
    "relations",
    "relation_names",
    "labels",
    "aliases",
    "descriptions",
    "attribute_predicates",
    "attribute_values",
    "attribute_datatypes",
)


def save_graph(kg: KnowledgeGraph, directory: str | Path) -> Path:
    """Write ``kg`` to ``directory`` atomically; returns the folder."""
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {name: getattr(kg, name) for name in ARRAY_FIELDS}
    for name in STRING_FIELDS:
        table: StringTable = getattr(kg, name)
        arrays[f"{name}.blob"] = table.blob
        arrays[f"{name}.offsets"] = table.offsets
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fingerprint": kg.fingerprint,
        "config": kg.config.to_dict(),
        "sources": kg.sources,
        "counts": {
            "entities": kg.num_entities,
            "relations": kg.num_relations,
            "triples": kg.num_triples,
        },
    }
    directory = as_path(directory, "the folder to save the KG to")
    refuse_foreign_folder(directory, KG_MARKERS, "a compiled KG")
    with atomic_directory(directory) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / INDEX_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return directory


def read_versioned_json(
    path: Path,
    fmt: str,
    version: int,
    what: str,
    fix: str,
    error: type[KGFuseError] = KGStoreError,
) -> dict[str, Any]:
    """The JSON object in ``path`` if it declares ``format: fmt`` and ``format_version: version``;
    otherwise ``error`` (a compiled KG's `KGStoreError`, a bundle's `BundleError`) naming the
    file, the problem and ``fix``."""
    meta = read_json(path, error, fix)
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{path} does not describe a kgfuse {what}; {fix}")
    if meta.get("format_version") != version:
        raise error(
            f"{path.parent} has {what} format version {meta.get('format_version')}, this kgfuse "
            f"reads version {version}; {fix}"
        )
    return meta


def read_graph_folder(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of a folder written by `save_graph` (arrays, and string tables) and its
    ``kg.json``; `kg.load.load_graph` builds the graph from them.

    Raises:
        KGStoreError: naming the missing or corrupt file and how to rebuild it.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = as_path(directory, "the compiled KG folder to open")
    rebuild = rebuild_hint(directory)
    if directory.is_file():
        raise KGStoreError(
            f"{directory} is a file, not a compiled KG folder: kg.open reads a folder written "
            f"by graph.save; read triples files with kg.load({str(directory)!r}), or compile "
            f"them once with `kgfuse kg load {directory} -o FOLDER` and open FOLDER"
        )
    if not directory.is_dir():
        raise KGStoreError(f"no compiled KG folder at {directory}; {rebuild}")
    meta_path, index_path = directory / META_FILE, directory / INDEX_FILE
    if not meta_path.is_file() and (other := _other_kind_of_folder(directory)):
        raise KGStoreError(other)
    for p in (meta_path, index_path):
        if not p.is_file():
            raise KGStoreError(
                f"{directory} is not a complete compiled KG: {p.name} is missing; {rebuild}"
            )
    meta = read_versioned_json(meta_path, FORMAT, FORMAT_VERSION, "KG", rebuild)
    try:
        arrays = load_file(str(index_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise KGStoreError(f"{index_path} is corrupt ({e}); {rebuild}") from e
    expected = set(ARRAY_FIELDS) | {f"{n}.{p}" for n in STRING_FIELDS for p in ("blob", "offsets")}
    missing = sorted(expected - set(arrays))
    if missing:
        raise KGStoreError(f"{index_path} lacks arrays {missing}; {rebuild}")
    fields: dict[str, Any] = {name: arrays[name] for name in ARRAY_FIELDS}
    for name in STRING_FIELDS:
        fields[name] = StringTable(arrays[f"{name}.blob"], arrays[f"{name}.offsets"])
    return fields, meta


def _other_kind_of_folder(directory: Path) -> str | None:
    """What to pass instead when ``directory`` is a model bundle or a training run's folder
    (it holds its KG in ``kg/``), or an Oxigraph store: rebuilding a KG there, as the usual
    hint says, would replace the model, or be refused. A bundle is known by its
    ``bundle.json`` (fusion/bundle.py), a store by RocksDB's ``CURRENT`` and ``MANIFEST-*``."""
    for bundle, kind in (
        (directory, "a model bundle"),
        (directory / "bundle", "a training run's folder"),
    ):
        if (bundle / "bundle.json").is_file():
            return (
                f"{directory} is {kind}, not a compiled KG; the KG its model reads is the "
                f"folder {bundle / 'kg'}: pass that"
            )
    if (directory / "CURRENT").is_file() and any(directory.glob("MANIFEST-*")):  # RocksDB
        return (
            f"{directory} is an Oxigraph store (kgfuse kg load --backend oxigraph), not a "
            f"compiled KG: query it with --store {directory} (kg path, kg neighbors), or name it "
            "in a config as kg.store"
        )
    return None


def rebuild_hint(directory: Path) -> str:
    return f"rebuild it with `kgfuse kg load FILES... -o {directory}`"
