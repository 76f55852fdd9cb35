"""A `StoreGraph` saved: a reference to a triple store, not a copy of its triples.

A reference folder holds ``store.json`` (the source, the KG config, the relation ids and the
entities interned so far, in order, so that ids stay stable) and ``names/``, the compiled names
graph the linker indexes (kg/store_names.py). `kg.store_graph.StoreGraph.save` and `.open` write
and read it through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kg.config import KGConfig
from kg.errors import KGStoreError
from kg.files import atomic_directory, refuse_foreign_folder
from kg.graph import KnowledgeGraph, load_graph
from kg.storage import KG_MARKERS, read_versioned_json

REFERENCE_FILE = "store.json"
NAMES_DIR = "names"
FORMAT = "kgfuse-kg-store"
FORMAT_VERSION = 1


def is_store_reference(directory: str | Path) -> bool:
    return (Path(directory) / REFERENCE_FILE).is_file()


@dataclass(frozen=True)
class StoreReference:
    """What a saved `StoreGraph` records besides its names graph.

    Attributes:
        source: the endpoint URL or store folder it read.
        config: the KG config (which predicates name, describe and type entities).
        relations: relation IRIs in id order.
        entities: entity IRIs in id order.
        fingerprint: the graph's fingerprint when saved.
    """

    source: str
    config: KGConfig
    relations: list[str]
    entities: list[str]
    fingerprint: str

    def save(self, directory: str | Path, names: KnowledgeGraph) -> Path:
        """Write ``store.json`` and ``names/`` atomically (the folder is replaced whole)."""
        reference = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source": self.source,
            "config": self.config.to_dict(),
            "relations": self.relations,
            "entities": self.entities,
            "fingerprint": self.fingerprint,
        }
        refuse_foreign_folder(directory, KG_MARKERS, "a KG reference")
        with atomic_directory(directory) as tmp:
            names.save(tmp / NAMES_DIR)
            (tmp / REFERENCE_FILE).write_text(
                json.dumps(reference, indent=1) + "\n", encoding="utf-8"
            )
        return Path(directory)

    @classmethod
    def open(cls, directory: str | Path) -> tuple[StoreReference, KnowledgeGraph]:
        """The reference and the names graph saved in ``directory``; `KGStoreError` names a
        missing or corrupt file."""
        directory = Path(directory)
        fix = "train the model again, or restore the bundle's kg/ folder"
        path = directory / REFERENCE_FILE
        ref = read_versioned_json(path, FORMAT, FORMAT_VERSION, "triple-store reference", fix)
        try:
            reference = cls(
                str(ref["source"]),
                KGConfig.from_dict(ref["config"]),
                list(ref["relations"]),
                list(ref["entities"]),
                str(ref.get("fingerprint", "")),
            )
        except KeyError as e:
            raise KGStoreError(f"{path} has no {e} field; {fix}") from e
        return reference, load_graph(directory / NAMES_DIR)
