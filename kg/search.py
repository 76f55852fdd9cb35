"""Find entities by name: exact, case-insensitive alias look-up, then a fuzzy fallback.

The fuzzy part is character 3-gram TF-IDF with cosine similarity over every distinct alias (the
idea of scispacy's candidate generator, with a sparse matrix product instead of an ANN index).
It catches typos, plurals and word-order changes, and it is built lazily, once per graph.
Search re-ranks the fuzzy candidates by the mean of that cosine and an edit-based ratio
(difflib), because cosine alone favours short aliases: "Quell Soo" is closer to "Quell Solo"
than to "Quell", though the short alias shares a larger share of its 3-grams.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from kg.graph import KnowledgeGraph


class EntityMatch(NamedTuple):
    entity: int
    iri: str
    label: str
    alias: str  # the alias that matched
    score: float  # 1.0 for an exact (case-insensitive) match, else cosine similarity


def normalize(text: str) -> str:
    """Case-folded, accent-stable, whitespace-collapsed form used for alias matching."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class LabelIndex:
    """Alias look-ups over one graph.

    Attributes:
        alias_texts: distinct normalized aliases.
        alias_entities: for each alias, the ids of the entities it names (sorted).
    """

    def __init__(self, kg: KnowledgeGraph):
        self.kg = kg
        by_alias: dict[str, list[int]] = {}
        for e in range(kg.num_entities):
            for name in kg.names(e):
                ids = by_alias.setdefault(normalize(name), [])
                if not ids or ids[-1] != e:
                    ids.append(e)
        self.alias_texts: list[str] = list(by_alias)
        self.alias_entities: list[list[int]] = list(by_alias.values())
        self._by_alias = by_alias
        self._vectorizer: Any = None
        self._matrix: Any = None
        self._analyze: Any = None
        self._gram_ids: dict[str, int] = {}
        self._idf: Any = None

    def exact(self, text: str) -> list[int]:
        """Entities one of whose aliases equals ``text`` up to case and spacing."""
        return list(self._by_alias.get(normalize(text), []))

    def _fit(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 3), lowercase=False, dtype=np.float32
        )
        self._matrix = vectorizer.fit_transform(self.alias_texts).T.tocsr()  # [ngrams, aliases]
        self._analyze = vectorizer.build_analyzer()
        self._gram_ids = vectorizer.vocabulary_
        self._idf = vectorizer.idf_.astype(np.float32)
        self._vectorizer = vectorizer

    def _vectorize(self, queries: list[str]) -> Any:
        """TF-IDF rows for ``queries``, built directly: sklearn's ``transform`` validates its
        input on every call, which costs more than the product itself for a few short strings."""
        from scipy.sparse import csr_matrix

        indptr, indices, data = [0], [], []
        for q in queries:
            counts: dict[int, int] = {}
            for gram in self._analyze(normalize(q)):
                g = self._gram_ids.get(gram)
                if g is not None:
                    counts[g] = counts.get(g, 0) + 1
            ids = np.fromiter(counts, dtype=np.int64, count=len(counts))
            w = np.fromiter(counts.values(), dtype=np.float32, count=len(counts)) * self._idf[ids]
            norm = float(np.sqrt((w * w).sum())) or 1.0
            indices.extend(ids.tolist())
            data.extend((w / norm).tolist())
            indptr.append(len(indices))
        return csr_matrix(
            (data, indices, indptr), shape=(len(queries), len(self._idf)), dtype=np.float32
        )

    def fuzzy(
        self, queries: list[str], k: int = 10, min_score: float = 0.3
    ) -> list[list[tuple[int, float]]]:
        """For each query, up to ``k`` ``(alias index, cosine)`` pairs above ``min_score``."""
        if not self.alias_texts or not queries:
            return [[] for _ in queries]
        if self._vectorizer is None:
            self._fit()
        sims = (self._vectorize(queries) @ self._matrix).tocsr()  # [queries, aliases]
        out: list[list[tuple[int, float]]] = []
        for row in range(sims.shape[0]):
            lo, hi = sims.indptr[row], sims.indptr[row + 1]
            idx, val = sims.indices[lo:hi], sims.data[lo:hi]
            keep = val >= min_score
            idx, val = idx[keep], val[keep]
            top = np.argsort(-val, kind="stable")[:k]
            out.append([(int(idx[t]), float(val[t])) for t in top])
        return out

    def search(
        self,
        query: str,
        limit: int = 10,
        min_score: float = 0.3,
        degrees_of: Callable[[list[int]], np.ndarray] | None = None,
    ) -> list[EntityMatch]:
        """Exact alias matches (score 1.0) first, then fuzzy ones; one row per entity. Equal
        scores rank the entity with more edges first: ``degrees_of`` (this index's ids ->
        degrees) counts them in a graph other than the indexed one (a store's whole graph).

        A fuzzy score is ``(cosine + edit ratio) / 2``, capped below 1.0.
        """
        best: dict[int, tuple[float, str]] = {}
        key = normalize(query)
        if not key:
            return []
        for e in self._by_alias.get(key, []):
            best[e] = (1.0, key)
        for alias, cosine in self.fuzzy([query], k=limit * 3, min_score=min_score)[0]:
            ratio = SequenceMatcher(None, key, self.alias_texts[alias], autojunk=False).ratio()
            score = min((cosine + ratio) / 2, 0.999)  # float32 cosine may exceed 1.0 a hair
            for e in self.alias_entities[alias]:
                if e not in best or best[e][0] < score:
                    best[e] = (score, self.alias_texts[alias])
        found = list(best)
        counts = degrees_of(found) if degrees_of is not None else self.kg.degrees()[found]
        degree = dict(zip(found, counts.tolist(), strict=True))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -degree[kv[0]], kv[0]))
        return [
            EntityMatch(e, self.kg.iri(e), self.kg.label(e), alias, round(score, 4))
            for e, (score, alias) in ranked[:limit]
        ]
