"""Predictions from a bundle: label, probabilities, linked entities and supporting paths."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion.bundle import load_bundle
from fusion.explain import explain
from fusion.model import FusionClassifier
from fusion.prediction import LinkedEntity, Prediction
from fusion.resources import Prepared, Resources
from kg.described_path import DescribedPath
from kg.protocol import check_count
from nlp.linker_settings import text_limit
from nlp.texts import DataError, check_texts, text_problem

# A batch of at most this many tokens (texts x padded length) runs on one torch thread when
# OpenMP's threads sleep between calls (OMP_WAIT_POLICY=PASSIVE, which the kgfuse CLI sets):
# waking them for each of the encoder's many small operations costs more than they save.
# Measured on the demo bundle, 2 cores: one 22-token text 18.3 ms on one thread against 25.1
# on two; a 128-token text 44.7 against 48.9; 4 texts (88 tokens) level; 6 texts 75.5
# against 70.3 (README, "The service under load").
ONE_THREAD_TOKENS = 128


@contextmanager
def threads_for(tokens: int) -> Iterator[None]:
    """Run a model call of ``tokens`` tokens on one thread when it is small and OpenMP's
    threads sleep between calls; the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    if threads == 1 or not passive or tokens > ONE_THREAD_TOKENS:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Predictor:
    """A loaded bundle, ready to answer. ``Predictor.from_dir(path).predict(["text"])``."""

    def __init__(self, model: FusionClassifier, resources: Resources, meta: dict[str, Any]):
        self.model = model
        self.resources = resources
        self.meta = meta

    @classmethod
    def from_dir(cls, folder: str | Path, kg_source: str | None = None) -> Predictor:
        """Load a bundle; ``kg_source`` re-points a triple-store bundle (see `load_bundle`)."""
        return cls(*load_bundle(folder, kg_source))

    @property
    def labels(self) -> list[str]:
        return self.resources.labels

    @property
    def max_chars(self) -> int:
        """The most characters a text may have: the linker refuses a longer one."""
        return text_limit(self.resources.linker_config)

    @property
    def temperature(self) -> float:
        """The bundle's temperature (fusion/calibration.py): probabilities are calibrated."""
        return float(self.meta.get("temperature", 1.0))

    def with_graph(self, graph: Any) -> Predictor:
        """The same model over another KG (hot triples): the graph encoder is inductive.
        This predictor is left as it was; the two share the model, so call one at a time."""
        return Predictor(self.model, self.resources.with_graph(graph), self.meta)

    def prepare(self, texts: list[str]) -> list[Prepared]:
        """Link every text and build its subgraph (the Python half of a prediction)."""
        return self.resources.prepare(texts)

    @torch.no_grad()
    def predict(
        self, texts: list[str], explain_paths: bool = False, top_k_paths: int = 3
    ) -> list[Prediction]:
        """Label, probabilities, linked entities and (``explain_paths``) supporting paths.

        An empty list gets an empty list. Every text is checked before any is predicted, so a
        bad one raises for the call (naming it); the service and ``kgfuse predict`` FILE answer
        the others and give the bad one its own error.

        Raises:
            DataError: ``texts`` is one string, not a list; a text is not a string, is empty
                or is not valid Unicode, or is longer than `max_chars` (naming it: "text 2 ...");
                ``explain_paths`` is not a
                bool, or ``top_k_paths`` not an int of 1 or more.
        """
        check_texts(texts)
        if not isinstance(explain_paths, bool | np.bool_):
            raise DataError(f"explain_paths must be True or False (got {explain_paths!r})")
        try:
            top_k_paths = check_count("top_k_paths", top_k_paths, 1)
        except (TypeError, ValueError) as e:
            raise DataError(f"{e}; top_k_paths is how many paths to give per text") from None
        texts = [str(text) for text in texts]  # numpy strings are strings too
        for i, text in enumerate(texts, 1):  # spaCy would fail the whole batch on it
            if problem := text_problem(text, self.max_chars):
                raise DataError(f"text {i} {problem.message}")
        if not texts:
            return []
        started = time.perf_counter()
        prepared = self.prepare(texts)
        link_ms = (time.perf_counter() - started) * 1e3
        return self.infer(prepared, explain_paths, top_k_paths, link_ms)

    @torch.no_grad()
    def infer(
        self,
        prepared: list[Prepared],
        explain_paths: bool = False,
        top_k_paths: int = 3,
        link_ms: float = 0.0,
    ) -> list[Prediction]:
        """`predict` for texts this predictor has prepared (the model half)."""
        started = time.perf_counter()
        model = self.model
        tokens, graph, counts = self.resources.inputs(model, prepared)
        # graph mode reads no tokens: its work grows with the texts, counted as short ones
        size = int(tokens["input_ids"].numel()) if tokens is not None else 32 * len(prepared)
        with threads_for(size):
            text = model.text_vector(tokens, len(prepared))
            parts = model.forward_parts(tokens, graph, text_vector=text, counts=counts)
            probs = torch.softmax(parts["logits"] / self.temperature, dim=-1)  # calibrated
            best = probs.argmax(dim=-1).tolist()
        model_at = time.perf_counter()
        with threads_for(0):  # a text's explanation is a few small passes over its subgraph
            paths = [
                self._paths(p, text[i : i + 1], best[i], top_k_paths) if explain_paths else None
                for i, p in enumerate(prepared)
            ]
        timings = {
            "link_ms": link_ms,
            "model_ms": (model_at - started) * 1e3,
            "explain_ms": (time.perf_counter() - model_at) * 1e3,
        }
        gate = parts.get("gate")
        return [
            Prediction(
                text=p.text,
                label=self.labels[best[i]],
                probabilities={
                    label: round(float(probs[i, j]), 6) for j, label in enumerate(self.labels)
                },
                entities=self._entities(p),
                graph_weight=None if gate is None else round(float(gate[i]), 4),
                paths=paths[i],
                timings_ms={k: round(v, 2) for k, v in timings.items()},
            )
            for i, p in enumerate(prepared)
        ]

    def _paths(
        self, prepared: Prepared, text_vector: torch.Tensor, label: int, top_k: int
    ) -> list[DescribedPath]:
        """The ``top_k`` paths that support ``label`` for one text (`fusion.explain`)."""
        found = explain(
            self.model,
            self.resources,
            prepared,
            text_vector,
            label,
            top_k,
            temperature=self.temperature,
        )
        return [path.describe(self.resources.graph) for path in found]

    def _entities(self, prepared: Prepared) -> list[LinkedEntity]:
        graph = self.resources.graph
        return [
            LinkedEntity(**span, label=graph.label(graph.entity_id(span["iri"])))
            for span in prepared.spans
        ]
