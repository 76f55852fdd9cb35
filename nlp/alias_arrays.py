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

`Strings` packs the alias texts (and other string lists) as UTF-8 bytes and offsets.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS

from kg.graph import KnowledgeGraph
from kg.search import normalize
from kg.strings import StringTable
from nlp.abbreviations import is_short_form
from nlp.keys import FUNCTION_WORDS, Lemmatizer, root

SEED = 0xCBF29CE484222325
PRIME = 0x100000001B3
MASK = (1 << 64) - 1
_MEMO = 1_000_000  # word hashes kept in memory


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
        h = SEED
        for w in words:
            h = ((h ^ self.word(w)) * PRIME) & MASK
        return h

    def one(self, w: str) -> int:
        """The hash of the one-word key ``(w,)``."""
        return ((SEED ^ self.word(w)) * PRIME) & MASK


class KeyTable:
    """Keys (by hash) to a run of values: alias ids, or one number per key.

    Shapes:
        hashes: uint64 [K], sorted; indptr: int64 [K + 1]; values: [indptr[-1]].
    """

    def __init__(self, hashes: np.ndarray, indptr: np.ndarray, values: np.ndarray):
        self.hashes, self.indptr, self.values = hashes, indptr, values

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
        where = np.minimum(self.hashes.searchsorted(q), len(self.hashes) - 1)
        return self.hashes[where] == q

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


_WORD = re.compile(r"^[^\W\d_]+$")
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


def content_words(keys: Sequence[str]) -> list[str]:
    """The keys that carry content (no function words, letters only)."""
    return [k for k in keys if k not in FUNCTION_WORDS and _WORD.match(k)]


def head_word(keys: Sequence[str]) -> str:
    """The head word of a name: the last content word before the first function word that
    follows one ("skin rash" -> "rash", "loss of appetite" -> "loss")."""
    head = ""
    for k in keys:
        if k in FUNCTION_WORDS or not _WORD.match(k):
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


def build_tables(
    kg: KnowledgeGraph,
    eligible: set[int],
    split: Callable[[str], Sequence[str]],
    lemmatizer: Lemmatizer,
    *,
    min_alias_length: int,
    stop_aliases: frozenset[str],
    table_names: dict[int, list[str]],
) -> AliasTables:
    """The tables over the names of ``eligible`` entities (KG names, then table names)."""
    hasher = Hasher()
    texts: list[str] = []
    entity: list[int] = []
    from_tables: list[bool] = []
    pairs: dict[str, _Pairs] = {  # (key hash, alias id), as C arrays: 1M names cost less
        name: (array("Q"), array("i"))
        for name in ("by_keys", "by_roots", "short_forms", "long_forms")
    }
    max_words = 1
    key_count: dict[tuple[bool, str], int] = defaultdict(int)
    pending: list[tuple[tuple[str, ...], int, bool]] = []
    common_words: set[str] = set()
    fuzzy: dict[str, list[int]] = {}
    root_df: dict[str, int] = defaultdict(int)
    modifiers: set[str] = set()
    common_names = 0
    partials: list[tuple[tuple[str, ...], str, int]] = []
    heads: dict[str, int] = {}  # head word -> the one entity it heads, -1 for several
    all_aliases = list(kg.aliases)  # read once: a look-up per alias costs more
    bounds = kg.alias_indptr.tolist()
    lemma: dict[str, str] = {}  # per distinct word, not per name: far fewer
    info: dict[str, tuple[str, int, int, bool]] = {}  # key -> root, hashes, content word
    key_hashes, key_ids = pairs["by_keys"]
    root_hashes, root_ids = pairs["by_roots"]
    for e in sorted(eligible):
        kg_names = all_aliases[bounds[e] : bounds[e + 1]] or kg.names(e)
        names = [(t, False) for t in kg_names] + [(t, True) for t in table_names.get(e, ())]
        for text, from_table in names:
            norm = normalize(text)
            if len(text) < min_alias_length or norm in stop_aliases:
                continue
            words = tuple(split(text))
            if not words:
                continue
            if not from_table:
                ids = fuzzy.get(norm)
                if ids is None:
                    fuzzy[norm] = [e]
                elif ids[-1] != e:
                    ids.append(e)
            keys = tuple(
                [lemma[w] if w in lemma else _remember(lemma, w, lemmatizer) for w in words]
            )
            about = [info[k] if k in info else _key_info(info, k, hasher) for k in keys]
            i = len(texts)
            texts.append(text)
            entity.append(e)
            from_tables.append(from_table)
            common = not from_table and text == text.lower()
            h = SEED
            for _, kh, _, _ in about:
                h = ((h ^ kh) * PRIME) & MASK
            key_hashes.append(h)
            key_ids.append(i)
            if common:
                h = SEED
                for _, _, rh, _ in about:
                    h = ((h ^ rh) * PRIME) & MASK
                root_hashes.append(h)
                root_ids.append(i)
                common_words.update(keys)
            if len(keys) > max_words:
                max_words = len(keys)
            content = [k for k, a in zip(keys, about, strict=True) if a[3]]
            if common:
                common_names += 1
                roots = list(dict.fromkeys([info[k][0] for k in content]))
                for r in roots:
                    root_df[r] += 1
                if len(roots) >= 2:
                    head = root(head_word(keys))
                    partials.append((tuple(roots), head, i))
                    modifiers.update(r for r in roots if r != head)
            if len(content) >= 2 and not from_table and len(set(content)) >= 2:
                if len(content) == len(keys):  # no function words: the last word is its head
                    heads[content[-1]] = e if heads.get(content[-1], e) == e else -1
                needed = tuple(dict.fromkeys([info[k][0] for k in content] if common else content))
                pending.append((needed, i, common))
                for k in needed:
                    key_count[common, k] += 1
            if len(text) <= 6 and is_acronym(text):
                _add(pairs["short_forms"], hasher.key((text[0].lower(),)), i)
            elif len(words) >= 2 and (initials := long_form_key(text)) is not None:
                _add(pairs["long_forms"], hasher.key(initials), i)
    all_words = set(info)
    del lemma
    windows: _Pairs = (array("Q"), array("i"))
    root_windows: _Pairs = (array("Q"), array("i"))
    for needed, i, common in pending:  # anchor each window on its rarest word
        anchor = min(needed, key=lambda k: (key_count[common, k], k))
        _add(root_windows if common else windows, hasher.one(anchor), i)
    idf = {r: math.log((1 + common_names) / df) for r, df in root_df.items()}
    anchors: _Pairs = (array("Q"), array("i"))
    for name_roots, head, i in partials:
        weights = {r: idf[r] for r in name_roots}
        if sum(weights.values()) <= 0:
            continue
        rarest = max(name_roots, key=lambda r: (weights[r], r))
        _add(anchors, hasher.one(rarest), i)
        if head != rarest and head not in modifiers:
            _add(anchors, hasher.one(head), i)
    by_keys = KeyTable.build(*pairs["by_keys"], np.int32)
    unique_heads = [
        (hasher.one(k), e)
        for k, e in heads.items()
        if e >= 0 and k not in STOP_WORDS and hasher.one(k) not in by_keys
    ]
    by_roots = KeyTable.build(*pairs["by_roots"], np.int32)
    entities = np.array(entity, dtype=np.int32)
    fuzzy_counts = [len(es) for es in fuzzy.values()]
    return AliasTables(
        texts=StringTable.from_strings(texts),
        entity=entities,
        from_table=np.array(from_tables, dtype=bool),
        by_keys=by_keys,
        by_roots=by_roots,
        windows=KeyTable.build(*windows, np.int32),
        root_windows=KeyTable.build(*root_windows, np.int32),
        partials=KeyTable.build(*anchors, np.int32),
        idf=KeyTable.build([hasher.one(r) for r in idf], list(idf.values()), np.float64),
        modifiers=_set(hasher, modifiers),
        heads=KeyTable.build([h for h, _ in unique_heads], [e for _, e in unique_heads], np.int32),
        short_forms=KeyTable.build(*pairs["short_forms"], np.int32),
        long_forms=KeyTable.build(*pairs["long_forms"], np.int32),
        alias_words=_set(hasher, all_words),
        alias_roots=_set(hasher, {root(k) for k in all_words}),
        ambiguous=np.union1d(_ambiguous(by_keys, entities), _ambiguous(by_roots, entities)),
        spelling_words=StringTable.from_strings(
            sorted(
                k for k in common_words if len(k) >= 5 and _WORD.match(k) and k not in STOP_WORDS
            )
        ),
        fuzzy_aliases=StringTable.from_strings(fuzzy),
        fuzzy_indptr=np.r_[0, np.cumsum(fuzzy_counts, dtype=np.int64)].astype(np.int64),
        fuzzy_entities=np.array([e for es in fuzzy.values() for e in es], dtype=np.int32),
        max_words=max_words,
    )


def _key_info(
    info: dict[str, tuple[str, int, int, bool]], key: str, hasher: Hasher
) -> tuple[str, int, int, bool]:
    """A lemma key's root, the hashes of both, and whether it is a content word."""
    r = root(key)
    info[key] = out = (r, hasher.word(key), hasher.word(r), bool(content_words([key])))
    return out


def _remember(memo: dict[str, str], word: str, make: Callable[[str], str]) -> str:
    memo[word] = out = make(word)
    return out


_Pairs = tuple[array, array]  # (key hashes "Q", alias ids "i")


def _add(pairs: _Pairs, h: int, i: int) -> None:
    pairs[0].append(h)
    pairs[1].append(i)


def _set(hasher: Hasher, words: Iterable[str]) -> KeyTable:
    hashes = [hasher.one(w) for w in words]
    return KeyTable.build(hashes, [0] * len(hashes), np.int8)


def _ambiguous(table: KeyTable, entity: np.ndarray) -> np.ndarray:
    """Entities of the names whose key is shared with another entity's name."""
    of = entity[table.values]
    lengths = np.diff(table.indptr)
    if not len(of):
        return np.zeros(0, np.int32)
    group = np.repeat(np.arange(len(lengths)), lengths)
    lo = np.minimum.reduceat(of, table.indptr[:-1][lengths > 0])
    hi = np.maximum.reduceat(of, table.indptr[:-1][lengths > 0])
    shared = np.zeros(len(lengths), dtype=bool)
    shared[lengths > 0] = lo != hi
    return np.unique(of[shared[group]]).astype(np.int32)
