"""Building the alias tables of nlp/alias_arrays.py from the names of a KG's entities.

`build_tables` reads each name once (`_NameReader.add`: its lemma keys, roots and what each
path needs of it), then turns what it gathered into `KeyTable`s (`_NameReader.tables`): the
window and partial anchors need counts over every name, so they are chosen at the end.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS

from kg.graph import KnowledgeGraph
from kg.search import normalize
from kg.strings import StringTable
from nlp.alias_arrays import (
    WORD,
    AliasTables,
    Hasher,
    KeyTable,
    fold,
    head_word,
    is_acronym,
    is_content_word,
    long_form_key,
)
from nlp.keys import Lemmatizer, uncached_root

_Pairs = tuple[array, array]  # (key hashes "Q", alias ids "i"), as C arrays: 1M names cost less
_KeyInfo = tuple[str, int, int, bool]  # a key's root, the hashes of both, is it a content word
# What the reader keeps per name is in C arrays and shared strings, not a Python record per
# name: on a KG of a million entities (1.3M names, 700k distinct words) the records, and a
# second copy of the lemma and root caches, made the build's peak ~1 GB higher.


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
    """The tables over the names of ``eligible`` entities (KG names, then table names); names
    shorter than ``min_alias_length`` or normalizing to one of ``stop_aliases`` are left out."""
    reader = _NameReader(split, lemmatizer)
    _read_names(reader, kg, eligible, min_alias_length, stop_aliases, table_names)
    return reader.tables()  # the names read are released first: the tables' peak is apart


def _read_names(
    reader: _NameReader,
    kg: KnowledgeGraph,
    eligible: set[int],
    min_alias_length: int,
    stop_aliases: frozenset[str],
    table_names: dict[int, list[str]],
) -> None:
    all_aliases = list(kg.aliases)  # read once: a look-up per alias costs more
    bounds = kg.alias_indptr.tolist()
    for e in sorted(eligible):
        kg_names = all_aliases[bounds[e] : bounds[e + 1]] or kg.names(e)
        names = [(t, False) for t in kg_names] + [(t, True) for t in table_names.get(e, ())]
        for text, from_table in names:
            norm = normalize(text)
            if len(text) >= min_alias_length and norm not in stop_aliases:
                reader.add(e, text, norm, from_table)


class _NameReader:
    """What the tables need of each name, gathered one name at a time."""

    def __init__(self, split: Callable[[str], Sequence[str]], lemmatizer: Lemmatizer):
        self.split = split
        self.lemmatizer = lemmatizer
        self.hasher = Hasher()
        self.text_bytes = bytearray()  # the names' UTF-8, one after another
        self.text_ends = array("q")  # where each name's bytes end
        self.entity = array("i")
        self.from_tables = array("b")
        self.pairs: dict[str, _Pairs] = {
            name: (array("Q"), array("i"))
            for name in ("by_keys", "by_roots", "short_forms", "long_forms")
        }
        self.key_hashes, self.key_ids = self.pairs["by_keys"]  # bound: appended once a name
        self.root_hashes, self.root_ids = self.pairs["by_roots"]
        self.max_words = 1
        self.lemma: dict[str, str] = {}  # per distinct word, not per name: far fewer
        self.info: dict[str, _KeyInfo] = {}  # per distinct lemma key
        self.fuzzy: dict[str, int | list[int]] = {}  # normalized KG name -> its entity, or all
        self.common_words: set[str] = set()  # keys of lower-case KG names
        self.common_names = 0
        self.root_df: dict[str, int] = defaultdict(int)  # lower-case KG names holding a root
        self.modifiers: set[str] = set()  # roots that are not the head of some KG name
        self.partials: list[tuple[tuple[str, ...], str, int]] = []  # (roots, head, alias id)
        self.heads: dict[str, int] = {}  # head word -> the one entity it heads, -1 for several
        # window names: alias id, common (lower-case), and the words needed, flattened
        self.window_ids, self.window_common = array("i"), array("b")
        self.window_words: list[str] = []
        self.window_ends = array("q")
        # names needing a key: [KG names with capitals, lower-case KG names] by key
        self.key_count: tuple[dict[str, int], dict[str, int]] = (
            defaultdict(int),
            defaultdict(int),
        )

    def add(self, e: int, text: str, norm: str, from_table: bool) -> None:
        """Name ``text`` (normalized: ``norm``) of entity ``e``."""
        words = tuple(self.split(text))
        if not words:
            return
        if not from_table:
            ids = self.fuzzy.get(norm)
            if ids is None:
                self.fuzzy[norm] = e
            elif isinstance(ids, int):
                if ids != e:
                    self.fuzzy[norm] = [ids, e]
            elif ids[-1] != e:
                ids.append(e)
        lemma, info = self.lemma, self.info
        keys = tuple([lemma[w] if w in lemma else self._lemma(w) for w in words])
        about = [info[k] if k in info else self._key_info(k) for k in keys]
        i = len(self.entity)
        self.text_bytes += text.encode()
        self.text_ends.append(len(self.text_bytes))
        self.entity.append(e)
        self.from_tables.append(from_table)
        common = not from_table and text == text.lower()
        self._add_keys(i, keys, about, common)
        content = [k for k, a in zip(keys, about, strict=True) if a[3]]
        if common:
            self._add_partial(i, keys, content)
        if len(content) >= 2 and not from_table and len(set(content)) >= 2:
            self._add_window(e, i, keys, content, common)
        if len(text) <= 6 and is_acronym(text):
            _add(self.pairs["short_forms"], self.hasher.key((text[0].lower(),)), i)
        elif len(words) >= 2 and (initials := long_form_key(text)) is not None:
            _add(self.pairs["long_forms"], self.hasher.key(initials), i)

    def _add_keys(self, i: int, keys: tuple[str, ...], about: list[_KeyInfo], common: bool) -> None:
        """Name ``i`` under the hash of its keys and, for a lower-case KG name, its roots."""
        self.key_hashes.append(fold(kh for _, kh, _, _ in about))
        self.key_ids.append(i)
        if common:
            self.root_hashes.append(fold(rh for _, _, rh, _ in about))
            self.root_ids.append(i)
            self.common_words.update(keys)
        if len(keys) > self.max_words:
            self.max_words = len(keys)

    def _add_partial(self, i: int, keys: tuple[str, ...], content: list[str]) -> None:
        """A lower-case KG name: its roots count towards the IDF; with two or more, it may be
        matched in part."""
        self.common_names += 1
        roots = list(dict.fromkeys([self.info[k][0] for k in content]))
        for r in roots:
            self.root_df[r] += 1
        if len(roots) >= 2:
            head = self.info[h][0] if (h := head_word(keys)) else ""  # its root
            self.partials.append((tuple(roots), head, i))
            self.modifiers.update(r for r in roots if r != head)

    def _add_window(
        self, e: int, i: int, keys: tuple[str, ...], content: list[str], common: bool
    ) -> None:
        """A KG name of two or more distinct content words: a window match (anchored once
        every name is read) and, without function words, a head-word match."""
        if len(content) == len(keys):  # no function words: the last word is its head
            self.heads[content[-1]] = e if self.heads.get(content[-1], e) == e else -1
        needed = dict.fromkeys([self.info[k][0] for k in content] if common else content)
        self.window_ids.append(i)
        self.window_common.append(common)
        self.window_words.extend(needed)
        self.window_ends.append(len(self.window_words))
        count = self.key_count[common]
        for k in needed:
            count[k] += 1

    def _lemma(self, word: str) -> str:
        self.lemma[word] = out = self.lemmatizer.uncached(word)  # memoized here, once
        return out

    def _key_info(self, key: str) -> _KeyInfo:
        r = uncached_root(key)
        h = self.hasher
        self.info[key] = out = (r, h.word(key), h.word(r), is_content_word(key))
        return out

    def tables(self) -> AliasTables:
        """The tables over every name added."""
        hasher, pairs = self.hasher, self.pairs
        all_words = set(self.info)
        windows, root_windows = self._window_anchors()
        idf = {r: math.log((1 + self.common_names) / df) for r, df in self.root_df.items()}
        by_keys = KeyTable.build(*pairs["by_keys"], np.int32)
        by_roots = KeyTable.build(*pairs["by_roots"], np.int32)
        heads = self._unique_heads(by_keys)
        entities = np.array(self.entity, dtype=np.int32)
        fuzzy = self.fuzzy
        fuzzy_counts = [1 if isinstance(es, int) else len(es) for es in fuzzy.values()]
        ends = np.frombuffer(self.text_ends, dtype=np.int64)
        return AliasTables(
            texts=StringTable(np.frombuffer(self.text_bytes, np.uint8), np.r_[0, ends]),
            entity=entities,
            from_table=np.array(self.from_tables, dtype=bool),
            by_keys=by_keys,
            by_roots=by_roots,
            windows=KeyTable.build(*windows, np.int32),
            root_windows=KeyTable.build(*root_windows, np.int32),
            partials=KeyTable.build(*self._partial_anchors(idf), np.int32),
            idf=KeyTable.build([hasher.one(r) for r in idf], list(idf.values()), np.float64),
            modifiers=_set(hasher, self.modifiers),
            heads=KeyTable.build([h for h, _ in heads], [e for _, e in heads], np.int32),
            short_forms=KeyTable.build(*pairs["short_forms"], np.int32),
            long_forms=KeyTable.build(*pairs["long_forms"], np.int32),
            alias_words=_set(hasher, all_words),
            alias_roots=_set(hasher, {self.info[k][0] for k in all_words}),  # their roots
            ambiguous=np.union1d(_ambiguous(by_keys, entities), _ambiguous(by_roots, entities)),
            spelling_words=StringTable.from_strings(
                sorted(
                    k
                    for k in self.common_words
                    if len(k) >= 5 and WORD.match(k) and k not in STOP_WORDS
                )
            ),
            fuzzy_aliases=StringTable.from_strings(fuzzy),
            fuzzy_indptr=np.r_[0, np.cumsum(fuzzy_counts, dtype=np.int64)].astype(np.int64),
            fuzzy_entities=np.fromiter(_flat(fuzzy.values()), dtype=np.int32),
            max_words=self.max_words,
        )

    def _window_anchors(self) -> tuple[_Pairs, _Pairs]:
        """Each window name under its rarest needed word: (by keys, by roots)."""
        windows: _Pairs = (array("Q"), array("i"))
        root_windows: _Pairs = (array("Q"), array("i"))
        words, ends = self.window_words, self.window_ends
        start = 0
        for i, common, end in zip(self.window_ids, self.window_common, ends, strict=True):
            count = self.key_count[common]
            anchor = min(words[start:end], key=lambda k: (count[k], k))
            _add(root_windows if common else windows, self.hasher.one(anchor), i)
            start = end
        return windows, root_windows

    def _partial_anchors(self, idf: dict[str, float]) -> _Pairs:
        """Each partial name under its rarest root, and under its head when that never
        modifies."""
        anchors: _Pairs = (array("Q"), array("i"))
        for name_roots, head, i in self.partials:
            weights = {r: idf[r] for r in name_roots}
            if sum(weights.values()) <= 0:
                continue
            rarest = max(name_roots, key=lambda r: (weights[r], r))
            _add(anchors, self.hasher.one(rarest), i)
            if head != rarest and head not in self.modifiers:
                _add(anchors, self.hasher.one(head), i)
        return anchors

    def _unique_heads(self, by_keys: KeyTable) -> list[tuple[int, int]]:
        """(hash, entity) of the head words that head one entity's names and name nothing
        themselves."""
        one = self.hasher.one
        return [
            (one(k), e)
            for k, e in self.heads.items()
            if e >= 0 and k not in STOP_WORDS and one(k) not in by_keys
        ]


def _add(pairs: _Pairs, h: int, i: int) -> None:
    pairs[0].append(h)
    pairs[1].append(i)


def _flat(entities: Iterable[int | list[int]]) -> Iterator[int]:
    for es in entities:
        if isinstance(es, int):
            yield es
        else:
            yield from es


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
