"""The candidate generator's look-up tables as arrays: built once, saved with the linker's index.

A `CandidateGenerator` (nlp/candidates.py) looks names up by their lemma keys, roots, window
anchors and so on. Over a KG of a million names, dicts of Python records for those tables cost
gigabytes and a minute to rebuild at every start. Here each table is a `KeyTable`: the sorted
64-bit hashes of its keys and CSR postings of alias ids (or one value per key), so a saved index
loads with a few ``np.load`` calls, and a look-up is a binary search:

- a key is a tuple of words; its hash folds the words' hashes (BLAKE2b, 8 bytes, so it is the
  same in every process), FNV-style: ``h = (h ^ word_hash) * PRIME`` from ``SEED``;
- two keys may share a hash (about one chance in 2**64 per pair); the generator rebuilds each
  alias it finds from its text and checks its key, so a collision cannot make a wrong match.

`Strings` packs the alias texts (and other string lists) as UTF-8 bytes and offsets. The tables
are built from a KG's names by nlp/alias_build.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kg.strings import StringTable
from nlp.abbreviations import is_short_form
from nlp.keys import FUNCTION_WORDS

SEED = 0xCBF29CE484222325
PRIME = 0x100000001B3
MASK = (1 << 64) - 1
_PRIME = np.uint64(PRIME)
_MEMO = 1_000_000  # word hashes kept in memory
FILTER_FROM = 1 << 16  # keys from which `KeyTable.found` tests a bitmap before searching


class Hasher:
    """Stable 64-bit hashes of words and of word tuples (memoized per word)."""

    def __init__(self) -> None:
        self._words: dict[str, int] = {}

    def word(self, w: str) -> int:
        h = self._words.get(w)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            if len(self._words) > _MEMO:
                self._words.clear()
            self._words[w] = h
        return h

    def key(self, words: Iterable[str]) -> int:
        return fold(self.word(w) for w in words)

    def one(self, w: str) -> int:
        """The hash of the one-word key ``(w,)``."""
        return ((SEED ^ self.word(w)) * PRIME) & MASK

    def span_hashes(self, words: Sequence[str], max_words: int) -> list[np.ndarray]:
        """The key hash of every span of ``words``, by length: item ``n - 1`` holds the hashes of
        the spans of ``n`` words (``words[a:a + n]`` at position ``a``), for ``n`` up to
        ``max_words``. All spans of one length are folded at once."""
        n = len(words)
        hashes = np.array([self.word(w) for w in words], dtype=np.uint64)
        h = np.full(n, SEED, dtype=np.uint64)
        out = []
        for length in range(1, min(max_words, n) + 1):
            h = (h[: n - length + 1] ^ hashes[length - 1 :]) * _PRIME  # (wraps: mod 2**64)
            out.append(h)
        return out


def fold(word_hashes: Iterable[int]) -> int:
    """The hash of a key from its words' hashes (`Hasher.word`), in order."""
    h = SEED
    for wh in word_hashes:
        h = ((h ^ wh) * PRIME) & MASK
    return h


def _filter_bits(keys: int) -> int:
    """Bits of a key's hash that index `KeyTable._filter`'s bitmap: 16 bitmap bits a key."""
    return max(10, (16 * keys - 1).bit_length())


class KeyTable:
    """Keys (by hash) to a run of values: alias ids, or one number per key.

    Shapes:
        hashes: uint64 [K], sorted; indptr: int64 [K + 1]; values: [indptr[-1]].
    """

    def __init__(self, hashes: np.ndarray, indptr: np.ndarray, values: np.ndarray):
        self.hashes, self.indptr, self.values = hashes, indptr, values
        self._bits: np.ndarray | None = None  # see `_filter`, made on first use
        self._shift = np.uint64(64 - _filter_bits(len(hashes)))

    @classmethod
    def build(
        cls, hashes: Sequence[int] | array, values: Sequence[int | float] | array, dtype: type
    ) -> KeyTable:
        """The table of ``(hashes[i], values[i])``; values of one key keep their order."""
        h = np.asarray(hashes, dtype=np.uint64)
        v: np.ndarray = np.asarray(values, dtype=dtype)
        order = np.argsort(h, kind="stable")
        h, v = h[order], v[order]
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, np.int64)
        return cls(h[starts], np.r_[starts, len(h)].astype(np.int64), v)

    def __len__(self) -> int:
        return len(self.hashes)

    def __repr__(self) -> str:
        return f"KeyTable({len(self.hashes)} keys, {len(self.values)} values)"

    def find(self, h: int) -> int:
        """The position of hash ``h``, or -1."""
        i = int(self.hashes.searchsorted(np.uint64(h)))
        return i if i < len(self.hashes) and int(self.hashes[i]) == h else -1

    def get(self, h: int) -> list[int | float]:
        """The values of hash ``h`` (empty when absent)."""
        i = self.find(h)
        if i < 0:
            return []
        return self.values[self.indptr[i] : self.indptr[i + 1]].tolist()

    def __contains__(self, h: object) -> bool:
        return isinstance(h, int) and self.find(h) >= 0

    def found(self, hs: np.ndarray) -> np.ndarray:
        """Whether each hash is a key (one search for many: a text's spans at once)."""
        if not len(self.hashes) or not len(hs):
            return np.zeros(len(hs), dtype=bool)
        q = np.asarray(hs, dtype=np.uint64)
        if len(self.hashes) < FILTER_FROM:
            where = np.minimum(self.hashes.searchsorted(q), len(self.hashes) - 1)
            return self.hashes[where] == q
        out = self._filter(q)
        maybe = np.flatnonzero(out)
        if len(maybe):  # binary search for the few the filter lets through
            q = q[maybe]
            where = np.minimum(self.hashes.searchsorted(q), len(self.hashes) - 1)
            out[maybe] = self.hashes[where] == q
        return out

    def _filter(self, q: np.ndarray) -> np.ndarray:
        """False where hash ``q`` is surely not a key: a bitmap of the keys' top bits, 16 bits
        a key (a 2 MB bitmap for a million keys; about 6% of absent hashes pass). Most spans of
        a text name nothing, and a binary search in a large table costs a cache miss a step."""
        if self._bits is None:  # set bit i % 8 of byte i // 8, a slice of keys at a time
            bits = np.zeros(1 << (61 - int(self._shift)), dtype=np.uint8)
            for start in range(0, len(self.hashes), 1 << 16):
                i = self.hashes[start : start + (1 << 16)] >> self._shift
                np.bitwise_or.at(
                    bits, i >> np.uint64(3), np.uint8(1) << (i & np.uint64(7)).astype(np.uint8)
                )
            self._bits = bits
        i = q >> self._shift
        return (self._bits[i >> np.uint64(3)] >> (i & np.uint64(7)).astype(np.uint8)) & 1 == 1

    def save(self, folder: Path, prefix: str) -> None:
        for name in ("hashes", "indptr", "values"):
            np.save(folder / f"{prefix}.{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, prefix: str) -> KeyTable:
        arrays = [
            np.load(folder / f"{prefix}.{name}.npy", allow_pickle=False, mmap_mode="r")
            for name in ("hashes", "indptr", "values")
        ]
        table = cls(*arrays)
        if len(table.indptr) != len(table.hashes) + 1:
            raise ValueError(f"the saved {prefix} table is damaged")
        return table


def save_strings(strings: StringTable, folder: Path, prefix: str) -> None:
    np.save(folder / f"{prefix}.blob.npy", strings.blob, allow_pickle=False)
    np.save(folder / f"{prefix}.offsets.npy", strings.offsets, allow_pickle=False)


def load_strings(folder: Path, prefix: str) -> StringTable:
    blob = np.load(folder / f"{prefix}.blob.npy", allow_pickle=False)
    offsets = np.load(folder / f"{prefix}.offsets.npy", allow_pickle=False)
    return StringTable(blob, offsets)


WORD = re.compile(r"^[^\W\d_]+$")  # a word of letters only
_TABLES = tuple(
    (
        "by_keys by_roots windows root_windows partials idf modifiers heads short_forms long_forms "
        "alias_words alias_roots"
    ).split()
)
_ARRAYS = ("entity", "from_table", "ambiguous", "fuzzy_indptr", "fuzzy_entities")
_STRINGS = ("texts", "spelling_words", "fuzzy_aliases")


@dataclass
class AliasTables:
    """Everything a `CandidateGenerator` looks names up in (see nlp/candidates.py for what
    each path matches). Alias ``i`` is ``texts[i]``, a name of ``entity[i]``; tables map keys
    to alias ids unless said otherwise.

    Shapes:
        entity: int32 [A]; from_table: bool [A] (a name from an alias table, not the KG);
        ambiguous: int32 [M], sorted; fuzzy_indptr: int64 [F + 1] and fuzzy_entities: int32,
        the entities of each of the F distinct normalized KG names ``fuzzy_aliases``.
    """

    texts: StringTable
    entity: np.ndarray
    from_table: np.ndarray
    by_keys: KeyTable  # lemma keys of the whole name
    by_roots: KeyTable  # roots of the keys, lower-case KG names only
    windows: KeyTable  # a window's anchor word (its rarest) -> names of 2+ content words
    root_windows: KeyTable  # the same by roots, for lower-case names
    partials: KeyTable  # a partial match's anchor root -> lower-case names of 2+ roots
    idf: KeyTable  # root -> its IDF over the lower-case KG names (one float64 per key)
    modifiers: KeyTable  # roots that are not the head of some KG name (a set)
    heads: KeyTable  # head word -> the one entity whose names it heads (one per key)
    short_forms: KeyTable  # (first letter,) -> acronym names
    long_forms: KeyTable  # (first letter, last word's first letter) -> names a short form
    # may spell out (2-7 alphabetic words)
    alias_words: KeyTable  # every lemma key of a name (a set)
    alias_roots: KeyTable  # the roots of those keys (a set)
    ambiguous: np.ndarray
    spelling_words: StringTable  # lemma keys of lower-case names: spelling-variant targets
    fuzzy_aliases: StringTable
    fuzzy_indptr: np.ndarray
    fuzzy_entities: np.ndarray
    max_words: int

    def save(self, folder: Path) -> None:
        for name in _TABLES:
            getattr(self, name).save(folder, f"alias.{name}")
        for name in _ARRAYS:
            np.save(folder / f"alias.{name}.npy", getattr(self, name), allow_pickle=False)
        for name in _STRINGS:
            save_strings(getattr(self, name), folder, f"alias.{name}")
        meta = {"max_words": self.max_words, "aliases": len(self.texts)}
        (folder / "alias.meta.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> AliasTables:
        meta = json.loads((folder / "alias.meta.json").read_text(encoding="utf-8"))
        fields: dict[str, Any] = {"max_words": int(meta["max_words"])}
        for name in _TABLES:
            fields[name] = KeyTable.load(folder, f"alias.{name}")
        for name in _ARRAYS:
            fields[name] = np.load(folder / f"alias.{name}.npy", allow_pickle=False)
        for name in _STRINGS:
            fields[name] = load_strings(folder, f"alias.{name}")
        tables = cls(**fields)
        if len(tables.texts) != meta["aliases"] or len(tables.entity) != meta["aliases"]:
            raise ValueError("the saved alias tables do not fit together")
        return tables


def is_content_word(key: str) -> bool:
    """A key that carries content: not a function word, letters only."""
    return key not in FUNCTION_WORDS and WORD.match(key) is not None


def content_words(keys: Sequence[str]) -> list[str]:
    """The keys that carry content (`is_content_word`)."""
    return [k for k in keys if is_content_word(k)]


def head_word(keys: Sequence[str]) -> str:
    """The head word of a name: the last content word before the first function word that
    follows one ("skin rash" -> "rash", "loss of appetite" -> "loss")."""
    head = ""
    for k in keys:
        if not is_content_word(k):
            if head:
                break
            continue
        head = k
    return head


def is_acronym(text: str) -> bool:
    return is_short_form(text) and text.rstrip("s").isupper() and len(text) <= 6


def long_form_key(text: str) -> tuple[str, str] | None:
    """The (first, last) initials under which a name may be the long form of a short form
    (`_long_fits` in nlp/candidates.py needs 2-7 alphabetic words); None: it never is."""
    words = text.split()
    if not 2 <= len(words) <= 7 or not "".join(words).isalpha():
        return None
    return words[0][0].lower(), words[-1][0].lower()
