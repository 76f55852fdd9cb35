"""Looking names up in the alias tables of one KG (nlp/alias_arrays.py): by lemma key, by
root, by anchor word (windows, partial matches), by first letter (acronyms), by spelling
variant and by character 3-grams (fuzzy). The tables hold arrays; an alias a look-up finds is
rebuilt from its text and memoized, so memory grows with the names texts touch."""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from nlp.alias_arrays import (
    WORD,
    AliasTables,
    Hasher,
    KeyTable,
    content_words,
    head_word,
    is_acronym,
)
from nlp.keys import JOINERS, Lemmatizer, root
from nlp.ngram_index import Hit, NgramIndex

RESPELL_RATIO = 0.85  # minimum edit ratio of a spelling variant
MEMO = 200_000  # aliases and anchored entries kept rebuilt in memory
SCAN = 16  # window entries of one anchor word tested one by one; more are read by file


class Alias(NamedTuple):
    entity: int
    text: str
    lower: tuple[str, ...]
    case_sensitive: bool  # short all-capital aliases ("AIDS") match only as written
    common: bool  # written in lower case: roots and spelling variants may reach it
    table: bool = False  # from an alias table, not the KG


class PartialEntry(NamedTuple):
    """A multi-word lower-case alias as partial matching sees it."""

    roots: frozenset[str]  # its content words' roots
    head: str  # the root of its head word
    total: float  # the IDF sum of its roots
    alias: Alias


class AliasLookup:
    """Memoized look-ups in ``tables``.

    Args:
        tables: the alias tables of one KG and its settings.
        split: an alias's words, as the pipeline's tokenizer splits them (`alias_splitter`).
        lemma: lemma keys for words.
        spelling_index: 3-gram index over ``tables.spelling_words`` (spelling variants).
        fuzzy_index: 3-gram index over ``tables.fuzzy_aliases`` (fuzzy matches).
        fuzzy_threshold: minimum edit ratio of a fuzzy hit (and twice its minimum 3-gram Dice).
    """

    def __init__(
        self,
        tables: AliasTables,
        split: Callable[[str], Sequence[str]],
        lemma: Lemmatizer,
        spelling_index: NgramIndex,
        fuzzy_index: NgramIndex,
        fuzzy_threshold: float,
    ):
        self.tables = tables
        self.split = split
        self.lemma = lemma
        self.spelling_index = spelling_index
        self.fuzzy_index = fuzzy_index
        self.fuzzy_threshold = fuzzy_threshold
        self.hash = Hasher()
        self._known_words: set[str] | None = None  # lemma table's words (read on first use)
        self._respelled: dict[str, str | None] = {}
        self._fuzzy_memo: dict[str, list[Hit]] = {}
        self._aliases_memo: dict[int, tuple[Alias, tuple[str, ...]]] = {}
        self._anchored: dict[tuple[str, str], list[Any]] = {}  # (table, word) -> entries
        self._keyed: dict[tuple[bool, tuple[str, ...]], list[Alias]] = {}  # (roots?, key)
        self._files: dict[tuple[str, str], dict[str, list[int]]] = {}  # `anchored_within`

    def alias(self, i: int) -> tuple[Alias, tuple[str, ...]]:
        """Alias ``i`` of the tables, and its lemma keys."""
        got = self._aliases_memo.get(i)
        if got is None:
            t = self.tables
            text, table = t.texts[i], bool(t.from_table[i])
            words = self.split(text)
            common = text == text.lower() and not table
            lower = tuple(w.lower() for w in words)
            alias = Alias(int(t.entity[i]), text, lower, is_acronym(text), common, table)
            got = (alias, self.lemma.keys(words))
            if len(self._aliases_memo) > MEMO:
                self._aliases_memo.clear()
            self._aliases_memo[i] = got
        return got

    def named(self, key: tuple[str, ...]) -> list[Alias]:
        """The aliases whose lemma keys are ``key``."""
        found = self._keyed.get((False, key))
        if found is None:
            ids = self.tables.by_keys.get(self.hash.key(key))
            found = [a for a, keys in map(self.alias, ids) if keys == key]  # type: ignore[arg-type]
            self._remember((False, key), found)
        return found

    def rooted(self, key: tuple[str, ...]) -> list[Alias]:
        """The lower-case KG aliases whose roots are ``key``."""
        found = self._keyed.get((True, key))
        if found is None:
            ids = self.tables.by_roots.get(self.hash.key(key))
            found = [
                a
                for a, keys in map(self.alias, ids)  # type: ignore[arg-type]
                if a.common and tuple(map(root, keys)) == key
            ]
            self._remember((True, key), found)
        return found

    def _remember(self, key: tuple[bool, tuple[str, ...]], found: list[Alias]) -> None:
        if len(self._keyed) > MEMO:
            self._keyed.clear()
        self._keyed[key] = found

    def anchored_on(self, table: str, word: str) -> list[Any]:
        """The window (``windows``, ``root_windows``: ``(needed words, alias)``) or partial
        (``partials``: `PartialEntry`) entries anchored on ``word``."""
        entries = self._anchored.get((table, word))
        if entries is not None:
            return entries
        entries = []
        for i in getattr(self.tables, table).get(self.hash.one(word)):
            alias, keys = self.alias(int(i))
            content = content_words(keys)
            if table == "partials":
                roots = list(dict.fromkeys(map(root, content)))
                if word in roots:
                    weights = {r: self.idf(r) for r in roots}
                    total = sum(weights.values())
                    entries.append(
                        PartialEntry(frozenset(roots), root(head_word(keys)), total, alias)
                    )
            else:
                needed = frozenset(map(root, content) if alias.common else content)
                if word in needed:
                    entries.append((needed, alias))
        if len(self._anchored) > MEMO:
            self._anchored.clear()
        self._anchored[table, word] = entries
        return entries

    def anchored_within(
        self, table: str, word: str, words: set[str]
    ) -> list[tuple[frozenset[str], Alias]]:
        """The window entries anchored on ``word`` (``windows`` or ``root_windows``) whose
        needed words are all in ``words`` (which holds ``word``), in `anchored_on`'s order.
        A frequent word anchors thousands of names of a large KG; each is filed under one
        other word it needs, so only the files of ``words`` are read."""
        entries = self.anchored_on(table, word)
        if len(entries) <= SCAN:
            return [e for e in entries if e[0] <= words]
        files = self._files.get((table, word))
        if files is None:
            files = defaultdict(list)
            for n, (needed, _) in enumerate(entries):
                files[min(needed - {word}, default=word)].append(n)
            if len(self._files) > MEMO:
                self._files.clear()
            self._files[table, word] = files
        held = sorted(n for w in words for n in files.get(w, ()))
        return [entries[n] for n in held if entries[n][0] <= words]

    def short_forms(self, letter: str) -> list[Alias]:
        """The acronym aliases starting with ``letter``."""
        entries = self._anchored.get(("short_forms", letter))
        if entries is None:
            ids = self.tables.short_forms.get(self.hash.key((letter,)))
            entries = self._anchored["short_forms", letter] = [self.alias(int(i))[0] for i in ids]
        return entries

    def long_forms(self, first: str, last: str) -> list[Alias]:
        """The multi-word aliases whose first and last words start with these letters."""
        ids = self.tables.long_forms.get(self.hash.key((first, last)))
        return [self.alias(int(i))[0] for i in ids]

    def head(self, key: str) -> int | None:
        """The one entity whose two-or-more-word aliases have the head word ``key``, if any."""
        found = self.tables.heads.get(self.hash.one(key)) if WORD.match(key) else []
        return int(found[0]) if found else None

    def idf(self, r: str) -> float:
        """The IDF of root ``r`` over the KG's lower-case aliases (0 for an unknown root)."""
        values = self.tables.idf.get(self.hash.one(r))
        return float(values[0]) if values else 0.0

    def is_modifier(self, r: str) -> bool:
        """Whether root ``r`` modifies another word in some KG name ("skin" in "skin rash")."""
        return self.hash.one(r) in self.tables.modifiers

    def known(self, k: str) -> bool:
        """Whether ``k`` is a word of the lemma table, a stop word or an alias word."""
        if self._known_words is None:
            self._known_words = set(self.lemma.vocabulary()) | set(STOP_WORDS)
        return k in self._known_words or self.hash.one(k) in self.tables.alias_words

    def spans_in(self, table: KeyTable, keys: list[str]) -> set[tuple[int, int]]:
        """The spans ``(a, b)`` of at most ``max_words`` words whose key ``keys[a:b]`` has its
        hash in ``table``: every span of one length hashed and searched at once (most spans
        name nothing)."""
        n = len(keys)
        if not n or not len(table):
            return set()
        parts = self.hash.span_hashes(keys, self.tables.max_words)
        hits = np.flatnonzero(table.found(np.concatenate(parts))).tolist()
        if not hits:
            return set()
        starts = np.cumsum([0] + [len(p) for p in parts]).tolist()  # where each length begins
        out = set()
        for i in hits:
            length = bisect.bisect_right(starts, i)
            a = i - starts[length - 1]
            out.add((a, a + length))
        return out

    def respell(self, key: str) -> str | None:
        """The alias word ``key`` is a spelling variant of, if any."""
        if key in self._respelled:
            return self._respelled[key]
        best: str | None = None
        if (
            len(key) >= 5
            and self.hash.one(key) not in self.tables.alias_words
            and self.hash.one(root(key)) not in self.tables.alias_roots
            and key not in STOP_WORDS
            and WORD.match(key)
        ):
            score = RESPELL_RATIO
            for hit in self.spelling_index.search(key, limit=10, min_dice=0.2, candidates=50):
                word = self.tables.spelling_words[hit.id]
                if word[0] == key[0] and abs(len(word) - len(key)) <= 2 and hit.ratio >= score:
                    best, score = word, hit.ratio
        if len(self._respelled) > 1_000_000:
            self._respelled.clear()
        self._respelled[key] = best
        return best

    def fuzzy_hits(self, query: str) -> list[Hit]:
        """The fuzzy index's hits for ``query`` at or above the threshold."""
        hits = self._fuzzy_memo.get(query)
        if hits is None:
            floor = self.fuzzy_threshold
            found = self.fuzzy_index.search(query, limit=5, min_dice=floor / 2, candidates=50)
            hits = [h for h in found if h.ratio >= floor]
            if len(self._fuzzy_memo) > 100_000:
                self._fuzzy_memo.clear()
            self._fuzzy_memo[query] = hits
        return hits

    def fuzzy_entities(self, hit: Hit) -> list[int]:
        """The entities named by the fuzzy alias ``hit`` found."""
        t = self.tables
        return [
            int(e) for e in t.fuzzy_entities[t.fuzzy_indptr[hit.id] : t.fuzzy_indptr[hit.id + 1]]
        ]


def alias_splitter(tokenize: Callable[[str], Doc]) -> Callable[[str], Sequence[str]]:
    """The words of an alias as the tokenizer splits them, minus spaces and joiners. Names of
    plain words (all letters, or all digits) and single spaces ("abdominal pain", "Pixel 8")
    are split on spaces: the tokenizer gives the same words, unless one is a special case
    ("cannot" -> "can", "not"), and building a Doc per alias is most of the cost of building
    the linker over a large KG."""
    owner = getattr(tokenize, "__self__", None)  # a Language's make_doc, or a Tokenizer's call
    rules = getattr(getattr(owner, "tokenizer", owner), "rules", None)
    special = frozenset(rules) if rules is not None else None

    def split(text: str) -> Sequence[str]:
        words = text.split(" ")
        if special is not None and _PLAIN.match(text) and special.isdisjoint(words):
            return words
        return [t.text for t in tokenize(text) if not t.is_space and t.text not in JOINERS]

    return split


_PLAIN = re.compile(r"^(?:[^\W\d_]+|[0-9]+)(?: (?:[^\W\d_]+|[0-9]+))*$")  # letters or digits
