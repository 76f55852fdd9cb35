"""Disambiguation: score each candidate of each mention, combining four signals in [0, 1].

- ``string``: how well the span matches the alias (1.0 exact ... fuzzy ratio), from candidates;
- ``prior``: how often the alias's referents are used in the KG: the candidate's share of
  ``degree + 1`` among the mention's candidates (1.0 for an unambiguous alias);
- ``context``: cosine between word TF-IDF vectors of the text and of the entity's context
  (its label, description and neighbours' labels); 0.5 (neutral) for unambiguous mentions,
  where it would only cost time;
- ``coherence``: share of the text's other mentions with a candidate within two hops of this
  one, smoothed to ``(connected + 1) / (others + 2)`` so a lone mention scores 0.5.

The final score is the weighted mean; links below the threshold are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kg.graph import KnowledgeGraph
from kg.store_graph import StoreGraph
from nlp.candidates import Mention
from nlp.errors import LinkingError

NEUTRAL = 0.5
MAX_CONTEXT_NEIGHBOURS = 30
MAX_NEIGHBOURHOOD = 5000


@dataclass(frozen=True)
class Weights:
    string: float = 0.5
    prior: float = 0.1
    context: float = 0.2
    coherence: float = 0.2

    def __post_init__(self) -> None:
        values = asdict(self)
        bad = {k: v for k, v in values.items() if not isinstance(v, (int, float)) or v < 0}
        if bad or sum(values.values()) <= 0:
            raise LinkingError(
                f"linker weights must be non-negative numbers with a positive sum (got {values})"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Weights:
        data = dict(data or {})
        unknown = sorted(set(data) - set(asdict(cls())))
        if unknown:
            raise LinkingError(
                f"unknown linker weight(s) {unknown}; expected string, prior, context, coherence"
            )
        return cls(**data)


class Disambiguator:
    def __init__(self, kg: KnowledgeGraph, weights: Weights):
        self.kg = kg
        self.weights = weights
        self.degrees = kg.degrees()
        self._vectorizer: Any = None
        self._entity_vectors: dict[int, Any] = {}
        self._neighbourhoods: dict[int, frozenset[int]] = {}

    def rank(self, text: str, mentions: list[Mention]) -> list[list[tuple[int, float]]]:
        """For each mention, its candidates as ``(entity, score)``, best first."""
        w = self.weights
        total = w.string + w.prior + w.context + w.coherence
        text_vector = None
        out = []
        for m, mention in enumerate(mentions):
            others = [
                o
                for j, o in enumerate(mentions)
                if j != m and (o.end <= mention.start or o.start >= mention.end)
            ]
            degree = np.array([self.degree(c.entity) + 1 for c in mention.candidates], dtype=float)
            prior = degree / degree.sum()
            scored = []
            for c, p in zip(mention.candidates, prior, strict=True):
                context = NEUTRAL
                if len(mention.candidates) > 1 and w.context:
                    if text_vector is None:
                        text_vector = self._vectorize_text(text)
                    context = self._context(text_vector, c.entity)
                coherence = self._coherence(c.entity, others) if w.coherence else NEUTRAL
                score = (
                    w.string * c.similarity
                    + w.prior * p
                    + w.context * context
                    + w.coherence * coherence
                ) / total
                scored.append((c.entity, round(float(score), 4)))
            scored.sort(key=lambda es: (-es[1], es[0]))
            out.append(scored)
        return out

    def degree(self, e: int) -> int:
        return int(self.degrees[e])

    # ----- context -----
    def _fit(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(
            stop_words="english", sublinear_tf=True, dtype=np.float32
        )
        self._vectorizer.fit(self._corpus())

    def _corpus(self) -> list[str]:
        """The documents the context vectorizer learns its vocabulary and IDF from."""
        return [self.entity_context(e) for e in range(self.kg.num_entities)]

    def entity_context(self, e: int) -> str:
        names = [self.kg.label(n.node) for n in self.kg.neighbors_of(e)[:MAX_CONTEXT_NEIGHBOURS]]
        return " ".join([self.kg.text(e), *names])

    def _vectorize_text(self, text: str) -> Any:
        if self._vectorizer is None:
            self._fit()
        return self._vectorizer.transform([text])

    def _context(self, text_vector: Any, e: int) -> float:
        vec = self._entity_vectors.get(e)
        if vec is None:
            vec = self._entity_vectors[e] = self._vectorizer.transform([self.entity_context(e)])
        return float(text_vector.multiply(vec).sum())  # rows are L2-normalized: dot = cosine

    # ----- coherence -----
    def neighbourhood(self, e: int) -> frozenset[int]:
        """Entities within two hops of ``e``: its neighbours, then theirs, the first
        ``MAX_NEIGHBOURHOOD`` of them (hubs are capped)."""
        hood = self._neighbourhoods.get(e)
        if hood is None:
            start = self._node(e)
            first = self._rows([start])[start]
            reached = first[:MAX_NEIGHBOURHOOD]
            if len(first) < MAX_NEIGHBOURHOOD:
                rows = self._rows(list(dict.fromkeys(first)))
                for n in first:
                    reached += rows[n]
                    if len(reached) >= MAX_NEIGHBOURHOOD:
                        break
            hood = self._neighbourhoods[e] = self._local(reached[:MAX_NEIGHBOURHOOD])
        return hood

    # where `neighbourhood` reads edges: the graph itself here, a triple store in a subclass
    def _node(self, e: int) -> int:
        """The id whose edges `_rows` reads for entity ``e``."""
        return e

    def _rows(self, nodes: list[int]) -> dict[int, list[int]]:
        """Each node's neighbours, one entry per edge, in CSR order."""
        kg = self.kg
        return {n: kg.neighbors[kg.indptr[n] : kg.indptr[n + 1]].tolist() for n in nodes}

    def _local(self, nodes: list[int]) -> frozenset[int]:
        """``nodes`` (from `_rows`) as entity ids of ``kg``."""
        return frozenset(nodes)

    def _coherence(self, e: int, others: list[Mention]) -> float:
        if not others:
            return NEUTRAL
        hood = self.neighbourhood(e)
        connected = sum(any(c.entity in hood for c in o.candidates) for o in others)
        return (connected + 1) / (len(others) + 2)


class StoreDisambiguator(Disambiguator):
    """Disambiguation for a KG read from a triple store: ``kg`` is its names graph (no edges);
    the prior and coherence come from the store's edges, so they equal those over the same
    triples compiled, and so do the entity contexts the text is compared with (text and
    neighbours' labels, fetched on demand). The context vectorizer's vocabulary and IDF are
    learnt from every entity's names, not their whole contexts (that would read the whole
    store), so where an alias is ambiguous its candidates can rank differently."""

    def __init__(self, kg: KnowledgeGraph, weights: Weights, store: StoreGraph):
        super().__init__(kg, weights)
        self.store = store

    def _node(self, e: int) -> int:
        """The store's id of names-graph entity ``e``."""
        return self.store.entity_id(self.kg.iri(e))

    def degree(self, e: int) -> int:
        return self.store.degree(self._node(e))

    def _corpus(self) -> list[str]:
        """Names only: an entity's full context would mean reading the whole store."""
        return [" ".join(self.kg.names(e)) for e in range(self.kg.num_entities)]

    def entity_context(self, e: int) -> str:
        """As over the compiled graph: text, then the first neighbours' labels, from the store."""
        s = self._node(e)
        neighbours = self.store.neighbors_of(s)[:MAX_CONTEXT_NEIGHBOURS]
        return " ".join([self.store.text(s), *(self.store.label(n.node) for n in neighbours)])

    def _rows(self, nodes: list[int]) -> dict[int, list[int]]:
        return {n: [m for _, m in row] for n, row in self.store.edge_entries(nodes).items()}

    def _local(self, nodes: list[int]) -> frozenset[int]:
        """Store ids as names-graph ids; entities without a name cannot be candidates."""
        ids = (self.kg.entities.find_sorted(self.store.iri(n)) for n in set(nodes))
        return frozenset(i for i in ids if i >= 0)
