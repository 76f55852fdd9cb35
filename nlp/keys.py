"""Matching keys for tokens: lower-cased and lemmatized, so "Joints" matches the alias "joint".

Lemmas come from spaCy's lookup tables (spacy-lookups-data), held by the linker itself, so the
linker works on `spacy.blank("en")` and gives the same keys whatever pipeline it sits in.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from spacy.lookups import Table, load_lookups

# Tokens that may sit inside a name without changing it: "pus-filled" == "pus filled".
JOINERS = frozenset({"-", "/", "'s", "\u2019s"})


class Lemmatizer:
    """Lower-cased lookup lemmas for one language; identity when no table exists for it."""

    def __init__(self, lang: str = "en"):
        self.lang = lang
        self._table: Table | None
        try:
            self._table = load_lookups(lang, ["lemma_lookup"]).get_table("lemma_lookup")
        except (ValueError, KeyError, ImportError):
            warnings.warn(
                f"no lemma lookup table for language {lang!r} (install spacy-lookups-data); "
                "matching falls back to lower-cased forms",
                stacklevel=2,
            )
            self._table = None
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        key = self._cache.get(word)
        if key is None:
            low = word.lower()
            found = self._table.get(low) or self._table.get(word) if self._table else None
            key = self._cache[word] = str(found).lower() if found else low
            if len(self._cache) > 1_000_000:  # bound memory on endless vocabularies
                self._cache.clear()
        return key

    def vocabulary(self) -> set[str]:
        """Every lemma the table knows (a word outside it may be a typo). The table stores
        word forms as hashes, so only its values can be listed."""
        return {str(v).lower() for v in self._table.values()} if self._table else set()

    def keys(self, words: Iterable[str]) -> tuple[str, ...]:
        return tuple(self(w) for w in words if w not in JOINERS)
