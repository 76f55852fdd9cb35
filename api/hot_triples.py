"""Triples added at run time (``POST /v1/kg/triples``): persisted, replayed, embedded once.

The hot-triples folder (default ``BUNDLE/hot-triples``) holds:

- ``000001.ttl``, ``000002.nt``, ...: each accepted request body, numbered in the order added;
  a restart replays them all.
- ``features/*.safetensors``: the feature vectors of the entity texts those triples brought,
  keyed by the SHA-256 of the text and tagged with the encoder that made them. A restart looks
  every text up here first, so it embeds nothing again; a vector of another encoder is never
  used. A file here is only a cache: one that cannot be read is skipped with a warning.

Inserts parse, compile and build the new graph's resources on one background thread
(`update_executor`); the embedding of new entity texts runs on the model thread in slices of
about `EMBED_SLICE_S` between prediction batches (`embed_between_batches`), so the model thread
keeps answering predictions from the old graph until the new one is swapped in. (A second
thread embedding at once would share the GIL, the cores and the tokenizer with predictions; a
lower-priority one stalls everyone when it is descheduled holding the GIL.)
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from api.errors import APIError
from fusion.features import write_new
from kg.files import writing
from kg.graph import KnowledgeGraph

FEATURES = "features"
log = logging.getLogger("kgfuse.api")


def hot_files(folder: Path) -> list[Path]:
    """Persisted hot-triple files in the order they were added (``000001.ttl``, ...)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name[:6].isdigit())


def next_stem(folder: Path) -> str:
    """The name (without extension) the next request body will most likely be saved under
    (another process may claim it first: `persist` then takes the next free one)."""
    return f"{len(hot_files(folder)) + 1:06d}"


def persist(folder: Path, body: bytes, ext: str) -> Path:
    """Save a request body as the next ``NNNNNN.ext`` of ``folder``.

    Raises:
        OutputError: it cannot be written (a full disk, say), naming the folder; nothing is left.
    """
    first = int(next_stem(folder))
    names = [f"{n:06d}.{ext}" for n in range(first, first + 10_000)]
    with writing(folder / names[0]):
        return write_new(folder, body, names)


def update_executor() -> ThreadPoolExecutor:
    """The one background thread that parses hot triples and builds the new graph's resources."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="kgfuse-kg-update")


EMBED_SLICE_S = 0.02  # model-thread time per slice of entity texts: the most a prediction waits
MAX_SLICE = 256


def embed_between_batches(
    run_on_model_thread: Callable[[Callable[[], Any]], Any],
    embed: Callable[[list[str]], np.ndarray],
) -> Callable[[list[str]], np.ndarray]:
    """An ``embed`` for a background thread: each slice of texts runs through
    ``run_on_model_thread`` (which blocks until done), sized to take about ``EMBED_SLICE_S``,
    so prediction batches queued meanwhile run between slices."""

    def timed(texts: list[str]) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        return embed(texts), time.perf_counter() - started

    def sliced(texts: list[str]) -> np.ndarray:
        parts, size, at = [], 1, 0
        while at < len(texts):
            part = texts[at : at + size]
            vectors, seconds = run_on_model_thread(functools.partial(timed, part))
            parts.append(vectors)
            at += len(part)
            size = min(MAX_SLICE, max(1, int(len(part) * EMBED_SLICE_S / max(seconds, 1e-4))))
        return np.concatenate(parts) if parts else embed([])

    return sliced


def refuse_iri_objects(served: KnowledgeGraph, extended: KnowledgeGraph) -> None:
    """Raise a 422 when ``extended`` (``served`` plus one request's triples) gives a label,
    alias or description predicate an IRI object: ``ex:flu rdfs:label ex:fever`` made it a new
    relation, refused as a 409 "retrain the model with it", when a quoted name was meant."""
    config = served.config
    literal_only = {
        *config.label_predicates,
        *config.alias_predicates,
        *config.description_predicates,
    }
    for predicate in extended.relations:
        if predicate in literal_only and served.relations.find_sorted(predicate) < 0:
            raise APIError(
                422,
                "iri_object",
                f"the triples give <{predicate}> an IRI as object, but it names or describes an "
                'entity with a literal: write the object as a quoted string ("Influenza"), not '
                "<...> or prefix:name; nothing was added",
            )


def refuse_literal_relations(served: KnowledgeGraph, added: KnowledgeGraph) -> None:
    """Raise a 422 when ``added`` (the triples of one request, alone) gives a predicate that
    ``served`` uses between entities (a relation, or a type predicate such as ``rdf:type``) a
    literal object: the loader would keep it as an attribute that no path or prediction reads,
    so ``ex:flu ex:hasSymptom "fever"`` (a string where an IRI was meant) would be answered 200
    and change nothing. A predicate that already holds literals in ``served`` is left alone: its
    literals were kept that way when the model was trained.
    """
    types = set(served.config.type_predicates)
    holding_literals: set[str] | None = None  # read once, and only when a literal needs it
    for entity in range(added.num_entities):
        for predicate, value, _ in added.attributes_of(entity):
            if predicate not in types and served.relations.find_sorted(predicate) < 0:
                continue
            if holding_literals is None:
                holding_literals = set(served.attribute_predicates)
            if predicate in holding_literals:
                continue
            shown = json.dumps(
                value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False
            )
            raise APIError(
                422,
                "literal_object",
                f"the triple <{added.iri(entity)}> <{predicate}> {shown} has a literal object, "
                f"but in this model's KG <{predicate}> links entities: write its object as an "
                "IRI (<http://...>, or prefix:name in Turtle), not a quoted string; nothing was "
                "added",
            )
