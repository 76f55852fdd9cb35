"""The vectors of semantic candidates (nlp/semantic.py): a static vector per word (each word
embedded alone by the encoder, once) and each eligible alias's vector, encoded and static (the
mean static vector of its content words); made on first use or in `prepare`, cached in
``cache_dir`` (nlp/semantic_cache.py), extended as texts bring new words."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kg.graph import KnowledgeGraph
from nlp.encoder_folder import default_encoder_dir
from nlp.keys import FUNCTION_WORDS
from nlp.semantic_cache import (
    digest,
    encoder_fingerprint,
    load_alias_vectors,
    load_words,
    read_meta,
    save_vectors,
)
from nlp.semantic_spans import WORD
from nlp.sentence_encoder import Encode, Encoder


class SemanticVectors:
    """Word and alias vectors over the names of ``eligible`` entities (see `SemanticCandidates`
    for the arguments).

    Shapes (once prepared; A aliases, W words, D encoder dimensions):
        alias_entities: int64 [A]; alias_vectors, alias_static: float32 [A, D], unit rows;
        word_vectors: float16 [W, D], row ``word_index[word]``.
    """

    def __init__(
        self,
        kg: KnowledgeGraph,
        eligible: set[int],
        tokenize: Callable[[str], Any],
        encoder_dir: Path | None,
        cache_dir: Path | None,
        vocabulary: Iterable[str] | None,
        encoder: Encode | None,
    ):
        self.kg = kg
        self.eligible = eligible
        self.tokenize = tokenize
        self.encoder_dir = encoder_dir
        self.cache_dir = cache_dir
        self._vocabulary = None if vocabulary is None else sorted({w.lower() for w in vocabulary})
        self._encoder = encoder
        self._ready = False
        self.one_off_seconds: dict[str, float] = {}
        self.alias_entities = np.zeros(0, dtype=np.int64)
        self.alias_texts: list[str] = []
        self.alias_vectors = np.zeros((0, 0), dtype=np.float32)
        self.alias_static = np.zeros((0, 0), dtype=np.float32)
        self.alias_lemmas: list[frozenset[str]] = []  # content-word lemmas of each alias
        self.word_index: dict[str, int] = {}
        self.word_vectors = np.zeros((0, 0), dtype=np.float16)
        self._span_cache: dict[str, np.ndarray] = {}
        self.max_span_cache = 100_000
        self._lemma_table: Any = None
        self._meta: dict[str, str] = {}

    # ----- setup (lazy: the encoder loads on first use) -----
    @property
    def encoder(self) -> Encode:
        if self._encoder is None:
            t = time.perf_counter()
            self._encoder = Encoder(self._encoder_dir())
            self.one_off_seconds["load_encoder"] = time.perf_counter() - t
        return self._encoder

    def _encoder_dir(self) -> Path:
        return self.encoder_dir or default_encoder_dir("the semantic option encoder_dir")

    @property
    def ready(self) -> bool:
        """Whether the alias and word vectors are in memory (`prepare` has run)."""
        return self._ready

    def prepare(self, folder: str | Path | None = None) -> SemanticVectors:
        """Embed the aliases and the vocabulary now, or load them from ``folder`` (default:
        ``cache_dir``; a folder written by `save`) where they match this encoder, vocabulary
        and aliases. Whatever had to be embedded is written to ``cache_dir`` when set."""
        if self._ready:
            return self
        source = Path(folder) if folder is not None else self.cache_dir
        aliases = [(e, text) for e in sorted(self.eligible) for text in self.kg.names(e) if text]
        self.alias_entities = np.array([e for e, _ in aliases], dtype=np.int64)
        self.alias_texts = [text for _, text in aliases]
        encoder_id = self._encoder_id()
        vocab_id = digest(self._vocabulary) if self._vocabulary is not None else "default"
        alias_id = digest([f"{e}\t{t}" for e, t in aliases])
        meta = read_meta(source)
        same_encoder = meta.get("encoder") == encoder_id
        cached_words = load_words(source, meta, vocab_id) if same_encoder else None
        dirty = self._words(cached_words)
        before = len(self.word_index)
        self.add(self._alias_words())  # the aliases' own words, for static alias vectors
        dirty = dirty or len(self.word_index) != before
        cached = (
            load_alias_vectors(source, meta, alias_id, len(self.alias_texts))
            if same_encoder
            else None
        )
        dirty = self._aliases(cached) or dirty
        self._meta = {"encoder": encoder_id, "vocabulary": vocab_id, "aliases": alias_id}
        self.alias_static = self._static_alias_vectors()
        self.alias_lemmas = [
            frozenset(self.lemma(w) for w in ws if w not in FUNCTION_WORDS)
            for ws in self._alias_word_lists()
        ]
        self._ready = True
        if dirty and self.cache_dir is not None:
            self.save(self.cache_dir)
        return self

    def _words(self, cached: tuple[dict[str, int], np.ndarray] | None) -> bool:
        """Take the cached word vectors, or embed the vocabulary; whether it embedded."""
        if cached is not None:
            self.word_index, self.word_vectors = cached
            return False
        words = self._default_vocabulary() if self._vocabulary is None else self._vocabulary
        _ = self.encoder if words else None  # loads it, timed apart from the embedding
        t = time.perf_counter()
        self.word_index, self.word_vectors = {}, np.zeros((0, 0), dtype=np.float16)
        self.add(words)
        self.one_off_seconds["embed_vocabulary"] = time.perf_counter() - t
        return True

    def _aliases(self, cached: np.ndarray | None) -> bool:
        """Take the cached alias vectors, or encode the aliases; whether it encoded."""
        if cached is not None:
            self.alias_vectors = cached
            return False
        _ = self.encoder if self.alias_texts else None
        t = time.perf_counter()
        self.alias_vectors = (
            self.encoder(self.alias_texts)
            if self.alias_texts
            else np.zeros((0, self.word_vectors.shape[1]), dtype=np.float32)
        )
        self.one_off_seconds["embed_aliases"] = time.perf_counter() - t
        return True

    def add_words(self, texts: Iterable[Any]) -> int:
        """Embed the words of ``texts`` (strings, or Docs / token sequences) that have no
        static vector yet, in large batches: one pass over a corpus or a batch of Docs before
        linking them; returns how many were added. Function words are skipped: spans are
        scored without them."""
        self.prepare()  # before: prepare replaces the vectors when it finds no cache
        words: set[str] = {
            str(tok.text).lower()
            for text in texts
            for tok in (self.tokenize(text) if isinstance(text, str) else text)
            if WORD.match(tok.text) and str(tok.text).lower() not in FUNCTION_WORDS
        }
        before = len(self.word_index)
        start = time.perf_counter()
        self.add(words)
        self.one_off_seconds["add_words"] = (
            self.one_off_seconds.get("add_words", 0.0) + time.perf_counter() - start
        )
        return len(self.word_index) - before

    def _default_vocabulary(self) -> list[str]:
        vocab_file = self._encoder_dir() / "vocab.txt"
        if not vocab_file.is_file():
            return []
        pieces = vocab_file.read_text(encoding="utf-8").split()
        return sorted({p for p in pieces if p.isalpha() and p.isascii() and len(p) > 1})

    def _alias_word_lists(self) -> list[list[str]]:
        return [
            [t.text.lower() for t in self.tokenize(text) if WORD.match(t.text)]
            for text in self.alias_texts
        ]

    def _alias_words(self) -> set[str]:
        return {w for ws in self._alias_word_lists() for w in ws}

    def _static_alias_vectors(self) -> np.ndarray:
        """Each alias as the mean static vector of its content words (as spans are scored)."""
        out = self.alias_vectors.copy()
        for i, ws in enumerate(self._alias_word_lists()):
            ws = [w for w in ws if w not in FUNCTION_WORDS] or ws
            if ws:
                out[i] = self.word_vectors[self.word_rows(ws)].astype(np.float32).mean(axis=0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def lemma(self, word: str) -> str:
        if self._lemma_table is None:
            try:
                from spacy.lookups import load_lookups

                self._lemma_table = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
            except (ValueError, KeyError, ImportError):
                self._lemma_table = {}
        found = self._lemma_table.get(word)
        return str(found).lower() if found else word

    # ----- cache (nlp/semantic_cache.py) -----
    def _encoder_id(self) -> str:
        if self._encoder is not None and not isinstance(self._encoder, Encoder):
            return f"custom:{type(self._encoder).__qualname__}"
        folder = self._encoder.folder if isinstance(self._encoder, Encoder) else None
        return encoder_fingerprint(folder or self._encoder_dir())

    def save(self, folder: str | Path | None = None) -> Path:
        """Write the vectors (words met so far included) to ``folder`` (default: cache_dir):
        meta.json, words.json, words.npy (float16), aliases.json, aliases.npy (float32)."""
        self.prepare()
        target = Path(folder) if folder is not None else self.cache_dir
        if target is None:
            raise ValueError("no folder to save to: pass one or set cache_dir")
        save_vectors(
            target,
            {**self._meta, "one_off_seconds": self.one_off_seconds},
            sorted(self.word_index, key=self.word_index.__getitem__),
            self.word_vectors,
            self.alias_entities.tolist(),
            self.alias_texts,
            self.alias_vectors,
        )
        return target

    # ----- vectors -----
    def add(self, words: Iterable[str]) -> None:
        missing = sorted({w for w in words if w not in self.word_index})
        if not missing:
            return
        vectors = self.encoder(missing).astype(np.float16)
        base = len(self.word_index)
        self.word_index.update((w, base + i) for i, w in enumerate(missing))
        self.word_vectors = np.concatenate([self.word_vectors, vectors]) if base else vectors

    def word_rows(self, words: list[str]) -> np.ndarray:
        """Row of each (lower-cased) word in ``word_vectors``; unseen words are embedded now,
        so read ``word_vectors`` after calling this."""
        self.add(words)
        return np.array([self.word_index[w] for w in words], dtype=np.int64)

    def encode_spans(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._span_cache]
        if missing:
            if len(self._span_cache) + len(missing) > self.max_span_cache:
                self._span_cache.clear()
            for t, v in zip(missing, self.encoder(missing), strict=True):
                self._span_cache[t] = v
        return np.stack([self._span_cache[t] for t in texts])
