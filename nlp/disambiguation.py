"""Disambiguation: score each candidate of each mention, combining four signals in [0, 1].

- ``string``: how well the span matches the alias (1.0 exact ... fuzzy ratio), from candidates;
- ``prior``: how often the alias's referents are used in the KG: the candidate's share of
  ``degree + 1`` among the mention's candidates (1.0 for an unambiguous alias);
- ``context``: cosine between word TF-IDF vectors of the text and of the entity's context
  (its label, description and neighbours' labels); 0.5 (neutral) for unambiguous mentions,
  where it would only cost time. The vocabulary and IDF are fitted once, when the linker is
  built (or loaded with its index, nlp/linker_index.py), over the contexts of the entities
  that share a name with another (the only ones an exact or lemma match leaves in doubt),
  and their vectors are computed then too; another entity's vector is made on first use;
- ``coherence``: share of the text's other mentions with a candidate within two hops of this
  one, smoothed to ``(connected + 1) / (others + 2)`` so a lone mention scores 0.5.

The final score is the weighted mean; links below the threshold are dropped. A mention with
more than ``MAX_RANKED`` candidates (a common word naming hundreds of entities of a large KG)
keeps the ``MAX_RANKED`` best by string similarity and prior before context and coherence.

One algorithm for every backend: degrees, contexts and neighbourhoods are read through the
`Graph` protocol (``degrees_of``, ``text``, ``neighbors_of``, ``label``, ``edge_entries``).
Over a triple store the candidates are entities of its names graph (the linker's index,
``names``), mapped to the store's ids by IRI. One difference is chosen, by whether the graph
is compiled, whole in memory (``Graph.compiled``): there the vocabulary and IDF are fitted on the
ambiguous entities' whole contexts; over a store on their names only (their contexts would mean
reading the store at build time), so where an alias is ambiguous its candidates can rank
differently; their contexts are fetched on first use. tests/test_disambiguation.py proves the
rankings equal when both fit the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from itertools import chain, pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from kg.protocol import Graph
from nlp.candidates import Mention
from nlp.errors import LinkingError
from nlp.stop_words import ENGLISH_STOP_WORDS

NEUTRAL = 0.5
MAX_CONTEXT_NEIGHBOURS = 30
MAX_NEIGHBOURHOOD = 5000
MAX_RANKED = 50  # candidates of one mention scored in full (see the module docstring)
FIT_SAMPLE = 20_000  # entities whose contexts fit the vocabulary when no name is shared
MEMO = 200_000  # entries per memo (entity vectors, neighbourhoods) before it is cleared
# candidates of one text from which `Disambiguator.rank` scores them as arrays (the same scores:
# below, a handful of numpy calls per text cost more than the loop over the candidates)
ARRAY_RANKING = 200
_ENTITY, _SIMILARITY = itemgetter(0), itemgetter(2)  # fields of a MentionCandidate


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
    """Ranks each mention's candidates (see the module docstring).

    Args:
        graph: the KG whose degrees, contexts and neighbourhoods score the candidates.
        weights: of the four signals.
        ambiguous: entities sharing a name with another; the context statistics are fitted
            over theirs. None: every entity (slow on a large KG).
        stats: a folder where `save` wrote the statistics for this graph and entity set (the
            caller checks that they match, see nlp/linker_index.py); None: fit them now.
        names: the graph whose ids the candidates (and ``ambiguous``) carry, when not
            ``graph`` itself: a store's names graph.
        fit_on_contexts: fit the context statistics on the ambiguous entities' contexts (and
            keep their vectors), else on their names. None: when ``graph`` is compiled, whole
            in memory (module docstring).
    """

    def __init__(
        self,
        graph: Graph,
        weights: Weights,
        ambiguous: Iterable[int] | None = None,
        stats: Path | None = None,
        names: Graph | None = None,
        fit_on_contexts: bool | None = None,
    ):
        self.graph = graph
        self.names = graph if names is None else names
        self._own_ids = self.names is graph  # the candidates' ids are the graph's
        self.weights = weights
        self.fit_on_contexts = (
            graph.compiled is not None if fit_on_contexts is None else fit_on_contexts
        )
        num_entities = self.names.num_entities
        self.ambiguous = (
            np.arange(num_entities, dtype=np.int32)
            if ambiguous is None
            else np.array(sorted(set(ambiguous)), dtype=np.int32)
        )
        self._neighbourhoods: dict[int, frozenset[int]] = {}
        self._entity_vectors: dict[int, csr_matrix] = {}
        self._vocabulary: dict[str, int] = {}
        self._idf = np.zeros(0, np.float32)
        self._matrix = csr_matrix((0, 0), dtype=np.float32)  # [ambiguous, vocabulary]
        self._matrix_entities = np.zeros(0, np.int32)  # the matrix's rows
        self._row = np.full(num_entities, -1, dtype=np.int32)
        self._analyze: Any = None
        if weights.context:
            self._load(stats) if stats is not None else self._fit()

    def rank(self, text: str, mentions: list[Mention]) -> list[list[tuple[int, float]]]:
        """For each mention, its candidates as ``(entity, score)``, best first."""
        w = self.weights
        total = w.string + w.prior + w.context + w.coherence
        kept = self._shortlists(mentions)
        entity_lists = [list(map(_ENTITY, cands)) for cands, _ in kept]  # c.entity, in C
        contexts = self._text_contexts(text, entity_lists)
        coherences = self._text_coherences(mentions, entity_lists)
        if sum(map(len, entity_lists)) >= ARRAY_RANKING:
            return self._rank_arrays(kept, entity_lists, contexts, coherences)
        out = []
        first = 0  # the mention's first candidate in ``coherences``
        for m, (cands, degree) in enumerate(kept):
            entities = entity_lists[m]
            prior = degree / degree.sum()
            context = contexts.get(m)
            if context is None:
                context = np.full(len(cands), NEUTRAL)
            coherence_of = coherences[first : first + len(cands)]
            first += len(cands)
            scored = []
            for e, c, p, ctx, coherence in zip(
                entities, cands, prior.tolist(), context.tolist(), coherence_of, strict=True
            ):
                # float(): a float32 similarity keeps its product's precision, then all is float64
                score = (
                    float(w.string * c.similarity)
                    + w.prior * p
                    + w.context * ctx
                    + w.coherence * coherence
                ) / total
                scored.append((e, round(score, 4)))
            scored.sort(key=lambda es: (-es[1], es[0]))
            out.append(scored)
        return out

    def _rank_arrays(
        self,
        kept: list[tuple[list[Any], np.ndarray]],
        entity_lists: list[list[int]],
        contexts: dict[int, np.ndarray],
        coherences: list[float],
    ) -> list[list[tuple[int, float]]]:
        """`rank`'s scores and order for a text with many candidates (a large KG's common words),
        every candidate of every mention at once: the same terms summed in the same order as
        float64, rounded to the same 4 decimals, sorted by the same key."""
        w = self.weights
        total = w.string + w.prior + w.context + w.coherence
        sizes = [len(entities) for entities in entity_lists]
        flat_entities, _, similarities, _ = zip(
            *chain.from_iterable(c for c, _ in kept), strict=True
        )
        if set(map(type, similarities)) == {float}:
            string = w.string * np.array(similarities)
        else:  # a float32 similarity's product is a float32 (what the loop's product gives)
            string = np.array([w.string * s for s in similarities], float)
        prior = np.concatenate([degree / degree.sum() for _, degree in kept])
        context = np.concatenate(
            [contexts.get(m, np.full(size, NEUTRAL)) for m, size in enumerate(sizes)]
        )
        coherence = np.array(coherences, float)
        score = (string + w.prior * prior + w.context * context + w.coherence * coherence) / total
        rounded = _round4(score)
        # one sort for the whole text: by mention, then best score, then entity
        owner = np.repeat(np.arange(len(sizes)), sizes)
        flat = np.array(flat_entities, dtype=np.int64)
        order = np.lexsort((flat, -rounded, owner))
        pairs = list(zip(flat[order].tolist(), rounded[order].tolist(), strict=True))
        bounds = np.cumsum([0, *sizes]).tolist()
        return [pairs[a:b] for a, b in pairwise(bounds)]

    def _text_coherences(
        self, mentions: list[Mention], entity_lists: list[list[int]]
    ) -> list[float]:
        """The coherence of every candidate of every mention, in order: ``(connected + 1) /
        (others + 2)``, where ``others`` are the mentions that do not overlap the candidate's
        and ``connected`` those of them with a candidate in its neighbourhood (NEUTRAL without
        others). Sets of mentions are bit masks: a candidate's neighbourhood is intersected
        once with the text's candidates, giving the mentions it reaches. At scale most
        candidates reach no mention at all."""
        if not self.weights.coherence:
            return [NEUTRAL] * sum(map(len, entity_lists))
        mask_of: dict[int, int] = {}  # entity -> the mentions it is a candidate of
        for j, entities in enumerate(entity_lists):
            bit = 1 << j
            for e in entities:
                mask_of[e] = mask_of.get(e, 0) | bit
        everywhere = frozenset(mask_of)
        memo, neighbourhood = self._neighbourhoods, self.neighbourhood
        reaches: dict[int, int] = {}  # entity -> the mentions its neighbourhood reaches
        for e in mask_of:
            hood = memo.get(e)
            if hood is None:
                hood = neighbourhood(e)
            if hood and not hood.isdisjoint(everywhere):
                mask = 0
                for t in hood & everywhere:
                    mask |= mask_of[t]
                reaches[e] = mask
        out: list[float] = []
        for m, (mention, entities) in enumerate(zip(mentions, entity_lists, strict=True)):
            others = 0  # the mentions that do not overlap this one
            for j, o in enumerate(mentions):
                if j != m and (o.end <= mention.start or o.start >= mention.end):
                    others |= 1 << j
            if not others:
                out += [NEUTRAL] * len(entities)
                continue
            n = others.bit_count() + 2
            lone = 1 / n  # (0 + 1) / (others + 2): no other mention reached
            out += [
                (((reaches[e] & others).bit_count() + 1) / n) if e in reaches else lone
                for e in entities
            ]
        return out

    def _shortlists(self, mentions: list[Mention]) -> list[tuple[list[Any], np.ndarray]]:
        """Each mention's ``MAX_RANKED`` best candidates by string similarity and prior, and
        their degrees plus one (the degrees of all mentions read at once)."""
        if not mentions:
            return []
        w = self.weights
        sizes = [len(m.candidates) for m in mentions]
        degrees = self._degrees([c for m in mentions for c in m.candidates]) + 1
        out = []
        for mention, degree in zip(mentions, np.split(degrees, np.cumsum(sizes)[:-1]), strict=True):
            cands = mention.candidates
            if len(cands) <= MAX_RANKED:
                out.append((cands, degree))
                continue
            similarity = np.array(list(map(_SIMILARITY, cands)))
            first = w.string * similarity + w.prior * degree / degree.sum()
            order = np.lexsort((list(map(_ENTITY, cands)), -first))[:MAX_RANKED]
            out.append(([cands[i] for i in order], degree[order]))
        return out

    def _text_contexts(self, text: str, entity_lists: list[list[int]]) -> dict[int, np.ndarray]:
        """The context signal of the candidates of each mention that has more than one (by
        mention), computed for all those mentions at once."""
        scored = [m for m, entities in enumerate(entity_lists) if len(entities) > 1]
        if not scored or not self.weights.context:
            return {}
        flat = [e for m in scored for e in entity_lists[m]]
        values = self._contexts(self._vectorize(text), flat)
        bounds = np.cumsum([len(entity_lists[m]) for m in scored])[:-1]
        return dict(zip(scored, np.split(values, bounds), strict=True))

    def _degrees(self, cands: list[Any]) -> np.ndarray:
        """The degree of each candidate's entity in the graph, as floats (one batched call: a
        common word's mention has hundreds of candidates)."""
        entities = list(map(_ENTITY, cands))
        return np.asarray(self.graph.degrees_of(self._nodes(entities)), dtype=float)

    # ----- candidates' ids and the graph's -----
    def _node(self, e: int) -> int:
        """The graph's id of candidate entity ``e``."""
        return e if self._own_ids else self.graph.entity_id(self.names.iri(e))

    def _nodes(self, entities: list[int]) -> list[int]:
        return entities if self._own_ids else [self._node(e) for e in entities]

    def _local(self, nodes: list[int]) -> frozenset[int]:
        """Graph ids as candidates' ids; entities without a name cannot be candidates."""
        if self._own_ids:
            return frozenset(nodes)
        iris = (self.graph.iri(n) for n in set(nodes))
        return frozenset(self.names.entity_id(i) for i in iris if self.names.has_entity(i))

    # ----- context -----
    def _fit(self) -> None:
        """Vocabulary and IDF over the ambiguous entities' contexts (a sample of all entities
        when no name is shared), and those entities' vectors."""
        fit_on = self.ambiguous
        if len(fit_on) < 2:
            num_entities = self.names.num_entities
            step = max(1, num_entities // FIT_SAMPLE)
            fit_on = np.arange(0, num_entities, step, dtype=np.int32)
        self._analyze = _Analyzer(ENGLISH_STOP_WORDS)
        corpus = self._corpus(fit_on.tolist())
        self._vocabulary, self._idf = _idf(corpus, self._analyze)
        if self.fit_on_contexts and self._vocabulary:
            same = fit_on is self.ambiguous
            contexts = (  # the corpus already holds them: each context is read once
                corpus if same else [self.entity_context(e) for e in self.ambiguous.tolist()]
            )
            self._set_matrix(self.ambiguous, self._vectorize_many(contexts))

    def _set_matrix(self, entities: np.ndarray, matrix: csr_matrix) -> None:
        self._matrix, self._matrix_entities = matrix, entities
        self._row[:] = -1
        self._row[entities] = np.arange(len(entities), dtype=np.int32)

    def _corpus(self, entities: list[int]) -> list[str]:
        """The documents of ``entities`` the context vectorizer learns its vocabulary and IDF
        from: their contexts, or their names (`fit_on_contexts`)."""
        if self.fit_on_contexts:
            return [self.entity_context(e) for e in entities]
        return [" ".join(self.names.names(e)) for e in entities]

    def entity_context(self, e: int) -> str:
        """The entity's text, then its first neighbours' labels."""
        s, graph = self._node(e), self.graph
        neighbours = graph.neighbors_of(s)[:MAX_CONTEXT_NEIGHBOURS]
        return " ".join([graph.text(s), *(graph.label(n.node) for n in neighbours)])

    def _vectorize(self, text: str) -> csr_matrix:
        return self._vectorize_many([text])

    def _vectorize_many(self, texts: list[str]) -> csr_matrix:
        """L2-normalized sublinear TF-IDF rows over the fitted vocabulary: the rows
        scikit-learn's ``TfidfVectorizer(sublinear_tf=True).transform`` gives, built directly."""
        indptr, indices, data = [0], [], []
        vocabulary, idf = self._vocabulary, self._idf
        for text in texts:
            counts: dict[int, int] = {}
            for term in self._analyze(text) if self._analyze is not None else ():
                t = vocabulary.get(term)
                if t is not None:
                    counts[t] = counts.get(t, 0) + 1
            ids = np.fromiter(counts, dtype=np.int32, count=len(counts))
            weight = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            weight = (1 + np.log(weight)) * idf[ids]
            norm = float(np.sqrt((weight * weight).sum())) or 1.0
            indices.append(ids)
            data.append(weight / norm)
            indptr.append(indptr[-1] + len(ids))
        return csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.array(indptr, dtype=np.int64),
            ),
            shape=(len(texts), len(idf)),
            dtype=np.float32,
        )

    def _contexts(self, text_vector: csr_matrix, entities: list[int]) -> np.ndarray:
        """Cosine of the text with each entity's context (rows are L2-normalized)."""
        if not len(self._idf):
            return np.full(len(entities), NEUTRAL)
        out = np.zeros(len(entities))
        rows = self._row[entities]
        known = np.flatnonzero(rows >= 0)
        if len(known):
            out[known] = self._dots(text_vector, rows[known])
        for i in np.flatnonzero(rows < 0):
            vec = self._entity_vectors.get(entities[i])
            if vec is None:
                if len(self._entity_vectors) > MEMO:
                    self._entity_vectors.clear()
                vec = self._vectorize(self.entity_context(entities[i]))
                self._entity_vectors[entities[i]] = vec
            out[i] = float(vec.multiply(text_vector).sum())
        return out

    def _dots(self, text_vector: csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Dot products of the text with rows of the matrix, in numpy (scipy's fancy indexing
        and product cost a millisecond a mention, more than the arithmetic)."""
        m = self._matrix
        starts, ends = m.indptr[rows], m.indptr[rows + 1]
        lengths = ends - starts
        if not lengths.sum():
            return np.zeros(len(rows))
        # the text's terms sorted, to find each row entry's term by binary search
        order = np.argsort(text_vector.indices, kind="stable")
        text_terms = text_vector.indices[order]
        text_weights = text_vector.data[order].astype(np.float64)
        # positions of every stored entry of the chosen rows, row after row
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        entries = offsets + np.arange(int(lengths.sum()))
        terms = m.indices[entries]
        weights = np.zeros(len(terms), dtype=np.float64)
        if len(text_terms):
            where = np.minimum(np.searchsorted(text_terms, terms), len(text_terms) - 1)
            hit = text_terms[where] == terms
            weights[hit] = m.data[entries[hit]] * text_weights[where[hit]]
        owner = np.repeat(np.arange(len(rows)), lengths)
        return np.bincount(owner, weights=weights, minlength=len(rows))

    # ----- the fitted statistics on disk -----
    def save(self, folder: Path) -> None:
        """Write the context statistics (vocabulary, IDF, the ambiguous entities' vectors)."""
        terms = [""] * len(self._vocabulary)
        for term, i in self._vocabulary.items():
            terms[i] = term
        (folder / "context.vocabulary.json").write_text(json.dumps(terms), encoding="utf-8")
        stop_words = sorted(ENGLISH_STOP_WORDS)
        (folder / "context.stop_words.json").write_text(json.dumps(stop_words), encoding="utf-8")
        arrays = {
            "idf": self._idf,
            "ambiguous": self.ambiguous,
            "entities": self._matrix_entities,
            "data": self._matrix.data,
            "indices": self._matrix.indices,
            "indptr": self._matrix.indptr,
        }
        for name, array in arrays.items():
            np.save(folder / f"context.{name}.npy", array, allow_pickle=False)

    def _load(self, folder: Path) -> None:
        """The statistics `save` wrote; the text analyzer is rebuilt from its saved stop words."""

        def array(name: str) -> np.ndarray:
            return np.load(folder / f"context.{name}.npy", allow_pickle=False)

        terms = json.loads((folder / "context.vocabulary.json").read_text(encoding="utf-8"))
        self._vocabulary = {t: i for i, t in enumerate(terms)}
        self._idf = array("idf")
        stop_path = folder / "context.stop_words.json"
        self._analyze = _Analyzer(json.loads(stop_path.read_text(encoding="utf-8")))
        if not np.array_equal(array("ambiguous"), self.ambiguous):
            raise ValueError("the saved context statistics are for other entities")
        entities = array("entities")
        matrix = csr_matrix(
            (array("data"), array("indices"), array("indptr")),
            shape=(len(entities), len(self._idf)),
        )
        self._set_matrix(entities, matrix)

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
            if len(self._neighbourhoods) > MEMO:
                self._neighbourhoods.clear()
            hood = self._neighbourhoods[e] = self._local(reached[:MAX_NEIGHBOURHOOD])
        return hood

    def _rows(self, nodes: list[int]) -> dict[int, list[int]]:
        """Each graph node's neighbours, one entry per edge, in the graph's order."""
        rows = self.graph.edge_entries(nodes)
        return {n: [m for _, m in row] for n, row in rows.items()}


def _round4(values: np.ndarray) -> np.ndarray:
    """``round(v, 4)`` of each value, as Python rounds it (the exact decimal value, half to
    even). ``rint(v * 1e4) / 1e4`` gives the same float unless the product's rounding moved it
    across a half; the values within a hair of a half are rounded by Python itself."""
    scaled = values * 1e4
    out = np.rint(scaled) / 1e4
    near_half = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    for i in near_half.tolist():
        out[i] = round(float(values[i]), 4)
    return out


def _idf(corpus: list[str], analyze: _Analyzer) -> tuple[dict[str, int], np.ndarray]:
    """The vocabulary and IDF that scikit-learn's ``TfidfVectorizer(stop_words="english",
    dtype=np.float32)`` fits on ``corpus``, computed the same way without importing it: the
    terms in sorted order, and ``ln((n + 1) / (df + 1)) + 1`` in float32 (smoothed IDF; n
    documents, df of them holding the term). Empty when no document holds a word.

    Shapes: idf: float32 [len(vocabulary)]."""
    df: dict[str, int] = {}
    for document in corpus:
        for term in set(analyze(document)):
            df[term] = df.get(term, 0) + 1
    terms = sorted(df)
    counts = np.array([df[t] for t in terms], dtype=np.float32)
    idf = np.full_like(counts, len(corpus) + 1)
    counts += 1.0
    idf /= counts  # in place, in float32, as scikit-learn does
    np.log(idf, out=idf)
    idf += 1.0
    return {t: i for i, t in enumerate(terms)}, idf


class _Analyzer:
    """scikit-learn's default word analyzer (what ``TfidfVectorizer(stop_words=...)
    .build_analyzer()`` does for ``analyzer="word"``, ``ngram_range=(1, 1)``): lower case,
    words of 2+ word characters, stop words dropped."""

    TOKEN = re.compile(r"(?u)\b\w\w+\b")  # sklearn's default token_pattern

    def __init__(self, stop_words: Iterable[str]):
        self.stop_words = frozenset(stop_words)

    def __call__(self, text: str) -> list[str]:
        return [w for w in self.TOKEN.findall(text.lower()) if w not in self.stop_words]
