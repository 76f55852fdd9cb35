"""Approximate string look-up that scales: character 3-gram postings, then an edit ratio.

The linker needs "which alias (or alias word) is this misspelled word or span close to?" over
KGs of a million entities. Scanning every alias with an edit distance costs seconds per word at
that size; this index answers from the postings of the query's 3-grams instead:

1. each string is padded with a space at both ends and cut into its distinct 3-grams
   (" diarrhea " -> " di", "dia", ..., "ea "); the postings map each 3-gram to the sorted ids of
   the strings holding it (CSR arrays, built with numpy sorts, no Python loop per gram);
2. a query's strings are those sharing the most 3-grams with it, counted over its postings
   (a 3-gram held by more than ``max_postings`` strings is skipped while rarer ones exist: it
   says little and costs much), scored by the Dice coefficient of their 3-gram sets;
3. the ``limit`` best by Dice are re-scored by rapidfuzz's normalized Indel similarity
   (``fuzz.ratio``: difflib's ratio, computed in C) for the caller to threshold.

The arrays save to and load from ``.npy`` files (no pickle), so the linker's index is built
once per KG (see nlp/linker_index.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz

N = 3  # characters per gram
MAX_POSTINGS = 20_000  # a gram held by more strings is skipped while rarer grams exist
CHUNK = 20_000  # strings whose 3-grams are cut at once while building (their temporaries:
# about 20 bytes per character each)
_ARRAYS = ("grams", "indptr", "postings", "sizes")


class Hit(NamedTuple):
    id: int  # position of the string in the indexed list
    dice: float  # Dice coefficient of the two 3-gram sets, in [0, 1]
    ratio: float  # normalized Indel similarity (difflib's ratio), in [0, 1]


class NgramIndex:
    """3-gram postings over ``texts`` (see the module docstring).

    Args:
        texts: the strings to index; ids are their positions (kept, not copied).

    Shapes:
        grams: int64 [G], sorted codes of the distinct grams; indptr: int64 [G + 1];
        postings: int32 [P], string ids per gram (sorted); sizes: int32 [len(texts)], the
        number of distinct grams of each string.
    """

    def __init__(self, texts: Sequence[str]):
        self.texts = texts
        self.grams, self.indptr, self.postings, self.sizes = _build(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return f"NgramIndex({len(self.texts)} strings, {len(self.grams)} grams)"

    def search(
        self, query: str, *, limit: int = 10, min_dice: float = 0.0, candidates: int = 200
    ) -> list[Hit]:
        """The ``limit`` strings closest to ``query``: of the ``candidates`` sharing the most
        3-grams with it (Dice at least ``min_dice``), those of best edit ratio, best first."""
        ids, dice = self.candidates(query, limit=candidates, min_dice=min_dice)
        hits = [
            Hit(int(i), float(d), fuzz.ratio(query, self.texts[i]) / 100)
            for i, d in zip(ids, dice, strict=True)
        ]
        hits.sort(key=lambda h: (-h.ratio, -h.dice, h.id))
        return hits[:limit]

    def candidates(
        self, query: str, *, limit: int = 200, min_dice: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the ``limit`` strings of highest 3-gram Dice with ``query``, and those Dice."""
        codes = np.unique(_codes([query])[0])  # (small arrays: see `_distinct`)
        if not len(self.grams) or not len(codes):
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        where = np.minimum(np.searchsorted(self.grams, codes), len(self.grams) - 1)
        where = where[self.grams[where] == codes]
        if not len(where):
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        lengths = self.indptr[where + 1] - self.indptr[where]
        rare = where[lengths <= MAX_POSTINGS]
        chosen = rare if len(rare) else where[np.argsort(lengths, kind="stable")[:1]]
        found = np.concatenate([self.postings[self.indptr[g] : self.indptr[g + 1]] for g in chosen])
        ids, shared = _counted(found)
        dice = 2.0 * shared / (len(codes) + self.sizes[ids])
        keep = dice >= min_dice
        ids, dice = ids[keep], dice[keep]
        if len(ids) > limit:
            top = np.argpartition(-dice, limit - 1)[:limit]
            ids, dice = ids[top], dice[top]
        order = np.lexsort((ids, -dice))
        return ids[order], dice[order].astype(np.float32)

    # ----- storage -----
    def save(self, folder: Path, prefix: str) -> None:
        """Write the arrays as ``{prefix}.{name}.npy`` in ``folder`` (the texts are not saved:
        the caller rebuilds them from the KG, in the same order)."""
        for name in _ARRAYS:
            np.save(folder / f"{prefix}.{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, prefix: str, texts: Sequence[str]) -> NgramIndex:
        """The index `save` wrote for these ``texts``; raises ValueError if it does not fit."""
        index = cls.__new__(cls)
        index.texts = texts
        arrays = [
            np.load(folder / f"{prefix}.{name}.npy", allow_pickle=False, mmap_mode="r")
            for name in _ARRAYS
        ]
        index.grams, index.indptr, index.postings, index.sizes = arrays
        if len(index.sizes) != len(index.texts) or len(index.indptr) != len(index.grams) + 1:
            raise ValueError(f"the saved {prefix} index does not fit its {len(texts)} strings")
        return index


def _counted(found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(found, return_counts=True)`` for postings lists laid end to end: each list
    is sorted, so a stable sort (a merge of runs) takes half the time of np.unique's sort."""
    found = np.sort(found, kind="stable")
    first = np.empty(len(found), dtype=bool)
    first[:1] = True
    np.not_equal(found[1:], found[:-1], out=first[1:])
    return found[first], np.diff(np.append(np.flatnonzero(first), len(found)))


def _codes(texts: Sequence[str]) -> list[np.ndarray]:
    """The 3-gram codes of each padded text (see `_gram_codes`)."""
    out = []
    for t in texts:
        c = np.frombuffer(f" {t} ".encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        out.append(_gram_codes(c))
    return out


def _gram_codes(c: np.ndarray) -> np.ndarray:
    """A 31-bit code per 3-gram of code points ``c``: a multiplicative hash. Two grams may
    share a code; their postings then merge, which only widens the prefilter (the edit ratio
    decides)."""
    h = (c[:-2] * 1_000_003 + c[1:-1]) * 1_000_003 + c[2:]
    return (h * 0x9E3779B1 >> 16) & 0x7FFFFFFF


def _build(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not texts:
        z = np.zeros(0, np.int64)
        return z, np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    pairs = _all_pairs(texts)  # (gram, text) pairs, sorted
    # the two 32-bit halves of each pair, read in place: ``pairs & 0xFFFFFFFF`` and
    # ``pairs >> 32`` would each be an int64 copy of every pair (120 MB apiece at 1M names)
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    halves = pairs.view(np.uint32)
    postings = halves[low::2].astype(np.int32)  # text ids are below 2**31
    gram_of = halves[high::2]  # gram codes are 31-bit
    starts = np.flatnonzero(np.r_[True, gram_of[1:] != gram_of[:-1]])
    grams = gram_of[starts].astype(np.int64)
    indptr = np.r_[starts, len(pairs)].astype(np.int64)
    del pairs, halves, gram_of
    sizes = np.bincount(postings, minlength=len(texts)).astype(np.int32)
    return grams, indptr, postings, sizes


def _all_pairs(texts: Sequence[str]) -> np.ndarray:
    """The distinct ``gram << 32 | text id`` of every text, sorted. Each chunk's pairs are
    written into one array sized for the most a text can have (a padded text of ``n``
    characters has ``n`` grams), then sorted in place: the pairs are never held twice (a list
    of chunks, their concatenation and its sorted copy made the build's peak at 1M names)."""
    out = np.empty(sum(map(len, texts)), dtype=np.int64)
    filled = 0
    for start in range(0, len(texts), CHUNK):
        chunk = _chunk_pairs(texts[start : start + CHUNK], start)
        out[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    pairs = out[:filled]  # chunks hold distinct ids, so their pairs are distinct too
    pairs.sort()
    return pairs


def _chunk_pairs(texts: Sequence[str], first: int) -> np.ndarray:
    """The distinct ``gram << 32 | text id`` of ``texts`` (ids from ``first``): one array of
    code points, texts separated by NUL; grams spanning a NUL are dropped."""
    joined = "\0".join(f" {t} " for t in texts)
    c = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    sep = c == 0
    owner = np.cumsum(sep, dtype=np.int64)[:-2] + first
    ok = ~(sep[:-2] | sep[1:-1] | sep[2:])
    return _distinct((_gram_codes(c)[ok] << 32) | owner[ok])


def _distinct(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, sorted (np.unique, without its hash path: that takes
    minutes on tens of millions of int64 here, a sort takes a second)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a
