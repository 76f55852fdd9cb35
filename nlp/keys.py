"""Matching keys for tokens: lower-cased and lemmatized, so "Joints" matches the alias "joint".

Lemmas come from spaCy's lookup tables (spacy-lookups-data), held by the linker itself, so the
linker works on `spacy.blank("en")` and gives the same keys whatever pipeline it sits in.

`root` goes one step further, across word classes: it strips derivational suffixes from a lemma
("painful" -> "pain", "inflammation" and "inflammatory" -> "inflamm", "irritated" ->
"irritate" -> "irrit", "itchy" -> "itch"), so a text that words a symptom with another part of
speech than the alias still matches it ("muscles feel painful" -> "muscle pain"). Roots are
coarser than lemmas; the candidate paths that use them score below the lemma paths.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.lookups import Table, load_lookups

# Tokens that may sit inside a name without changing it: "pus-filled" == "pus filled".
JOINERS = frozenset({"-", "/", "'s", "\u2019s"})
# spaCy's stop words that carry content in names and symptom talk ("back pain", "side pain")
CONTENT_STOP_WORDS = frozenset(
    {"back", "side", "front", "bottom", "top", "empty", "full", "move", "show"}
)
# Words that never make a name by themselves: the rest of spaCy's stop words, and "'s"
FUNCTION_WORDS = frozenset(STOP_WORDS - CONTENT_STOP_WORDS) | {"'s", "\u2019s"}


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
            key = self._cache[word] = self.uncached(word)
            if len(self._cache) > 1_000_000:  # bound memory on endless vocabularies
                self._cache.clear()
        return key

    def uncached(self, word: str) -> str:
        """The key of ``word``, not kept: for a caller that memoizes words itself (building
        the alias tables reads every word of a KG's names once, and a 1M-entity KG has 700k
        distinct ones that texts seldom use)."""
        low = word.lower()
        found = self._table.get(low) or self._table.get(word) if self._table else None
        return str(found).lower() if found else low

    def vocabulary(self) -> set[str]:
        """Every lemma the table knows (a word outside it may be a typo). The table stores
        word forms as hashes, so only its values can be listed."""
        return {str(v).lower() for v in self._table.values()} if self._table else set()

    def keys(self, words: Iterable[str]) -> tuple[str, ...]:
        return tuple(self(w) for w in words if w not in JOINERS)


# Derivational suffixes, longest first; each keeps a root of at least MIN_ROOT letters.
_SUFFIXES = tuple(
    (
        "ational ation atory ition iness ness ment able ible ful ous ive ion ity ate ish ly al y e"
    ).split()
)
# the suffixes by their last letter, in the order above: a word is tried against those alone
_SUFFIXES_BY_LAST: dict[str, tuple[str, ...]] = {
    last: tuple(s for s in _SUFFIXES if s[-1] == last) for last in {s[-1] for s in _SUFFIXES}
}
_MIN_ROOT = {"ness": 3, "ful": 3}  # "redness" -> "red", "painful" -> "pain"
MIN_ROOT = 4
_ROOTS: dict[str, str] = {}


def root(key: str) -> str:
    """The derivational root of a lemma key (at most two suffixes stripped; see module doc).
    Words that are not purely alphabetic are returned as they are."""
    found = _ROOTS.get(key)
    if found is not None:
        return found
    word = uncached_root(key)
    if len(_ROOTS) > 1_000_000:
        _ROOTS.clear()
    _ROOTS[key] = word
    return word


def uncached_root(key: str) -> str:
    """`root` without keeping the result (see `Lemmatizer.uncached`)."""
    word = key
    if word.isalpha():
        for _ in range(2):
            for suffix in _SUFFIXES_BY_LAST.get(word[-1], ()):
                cut = len(word) - len(suffix)
                if word.endswith(suffix) and cut >= _MIN_ROOT.get(suffix, MIN_ROOT):
                    word = word[:cut] + ("y" if suffix == "iness" else "")
                    if suffix == "y" and word[-1] == word[-2] and word[-1] not in "flsz":
                        word = word[:-1]  # "blurry" -> "blur", "runny" -> "run"
                    break
            else:
                break
    return word
