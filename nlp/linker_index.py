"""The linker's index on disk: built once per KG and settings, loaded by later pipelines.

Building a `kg_linker` over a large KG costs its alias tables (nlp/alias_arrays.py: every
name's lemma keys, roots, window and partial anchors, as hashed keys and postings), its n-gram
indexes (nlp/ngram_index.py: spelling variants and fuzzy matches) and its disambiguation
statistics (nlp/disambiguation.py: the TF-IDF vocabulary, IDF and vectors of the entities that
share a name). All depend only on the KG's content and the linker settings that choose and
split the names, so they are saved in a folder with a ``meta.json`` naming the KG fingerprint
and a digest of those settings, and a later pipeline reads them with ``np.load`` (the large
arrays memory-mapped) instead of building them:

    from nlp.linker_index import save_index
    save_index(nlp, "out/kg.linker")                             # after building once
    nlp = from_kg(graph, index="out/kg.linker")                  # later: loads, does not fit

A pipeline whose ``index`` folder is missing, or was written for another KG or other settings,
builds the index as before and writes it there (a warning says why, when it was stale). A
pipeline saved with ``nlp.to_disk`` keeps its index in its ``index/`` folder. The files are
``.npy`` arrays and JSON: no pickle.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import spacy
from spacy.language import Language

from kg.files import as_path, atomic_directory, refuse_foreign_folder
from nlp.errors import LinkingError

if TYPE_CHECKING:
    from nlp.linker import KGLinker

FORMAT = 2  # bump when what the index holds, or how it is built, changes
META = "meta.json"


def linker_of(pipeline: KGLinker | Language) -> KGLinker:
    """The `kg_linker` of a pipeline, or the linker itself."""
    from nlp.linker import KGLinker

    if isinstance(pipeline, KGLinker):
        return pipeline
    if isinstance(pipeline, Language):
        for _, component in pipeline.pipeline:
            if isinstance(component, KGLinker):
                return component
        raise LinkingError(
            "the pipeline has no kg_linker component; add one with "
            "nlp.add_pipe('kg_linker', config={'kg': 'PATH'}) or nlp.linker.from_kg(graph)"
        )
    raise LinkingError(
        f"expected a spaCy pipeline or a KGLinker, got {type(pipeline).__name__}; pass the "
        "pipeline that from_kg returned"
    )


def settings(linker: KGLinker) -> dict[str, Any]:
    """The linker settings that the index depends on (names, their words, fitted entities)."""
    table = (
        sorted((r.alias, r.entity) for r in linker.alias_table.rows) if linker.alias_table else []
    )
    return {
        "format": FORMAT,
        "lang": linker.nlp.lang,
        "spacy": spacy.__version__,
        "min_alias_length": linker.min_alias_length,
        "stop_aliases": sorted(linker.stop_aliases),
        "types": sorted(linker.types),
        "link_classes": linker.link_classes,
        "context": bool(linker.weights.context),
        "store": linker.store is not None,
        "alias_table": hashlib.sha256(json.dumps(table).encode()).hexdigest(),
    }


def digest(linker: KGLinker) -> str:
    return hashlib.sha256(json.dumps(settings(linker), sort_keys=True).encode()).hexdigest()


def usable(folder: Path, linker: KGLinker, fingerprint: str) -> str | None:
    """None when ``folder`` holds an index for this KG and these settings, else why not."""
    meta_path = folder / META
    if not meta_path.is_file():
        return f"{folder} holds no linker index (no {META})"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{meta_path} is unreadable ({e})"
    if meta.get("kg_fingerprint") != fingerprint:
        return f"the linker index in {folder} was built for another KG (fingerprint differs)"
    if meta.get("settings_digest") != digest(linker):
        return f"the linker index in {folder} was built with other linker settings"
    return None


def save_index(pipeline: KGLinker | Language, folder: str | Path) -> Path:
    """Write the linker's index (n-gram indexes, disambiguation statistics, ``meta.json``) to
    ``folder``, replacing what was there; builds the linker first if need be. Atomic: a
    failed write leaves the old folder as it was."""
    linker = linker_of(pipeline)
    graph, generator, disambiguator = linker._ready()
    folder = as_path(folder, "the linker index folder")
    refuse_foreign_folder(folder, (META,), "a linker index")
    with atomic_directory(folder) as tmp:
        generator.save_indexes(tmp)
        disambiguator.save(tmp)
        meta = {
            "format": FORMAT,
            "kg_fingerprint": graph.fingerprint,
            "entities": graph.num_entities,
            "settings_digest": digest(linker),
            "settings": settings(linker),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def load_index(pipeline: KGLinker | Language, folder: str | Path) -> bool:
    """Use the index in ``folder`` from now on: the linker is rebuilt from it when it matches
    the KG and settings (True), else built anew and written there (False, with a warning)."""
    linker = linker_of(pipeline)
    linker.index_path = str(folder)
    if linker.kg is None:
        linker._ready()
    else:
        linker._build()
    return linker.index_loaded


def warn_stale(reason: str) -> None:
    warnings.warn(f"{reason}; rebuilding the linker index", stacklevel=4)
