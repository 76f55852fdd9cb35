"""Candidate generation: which spans of a text may name which KG entities.

Paths, from most to least certain (``kind`` of a `MentionCandidate`):
- ``exact``: the span's lower-cased words equal an alias's;
- ``lemma``: equal after lemmatization ("joints" -> "joint", "headaches" -> "headache");
- ``root``: equal after derivational roots (nlp/keys.py `root`: "congested" -> "congestion",
  "itchy" -> "itching");
- ``respelled``: equal once a word is replaced by the alias word it is a spelling variant of
  ("diarrhea" -> "diarrhoea": same first letter, edit ratio at least 0.85; the alias words are
  looked up in a character 3-gram index, nlp/ngram_index.py, so the cost does not grow with
  the KG);
  roots and spelling variants reach only aliases written in lower case (common nouns such as
  "skin rash"): a proper name is not derived from or misspelled as a common word ("stars" is no
  "Starly", "electricity" no "Electric" type);
- ``table``: a name from an alias table (nlp/alias_table.py: a user's synonyms or aliases
  learned from labelled texts, "worn out" -> fatigue), equal as written or after lemmatization
  ("threw up" / "throwing up"); no roots, spelling variants or windows: a table's names were
  seen in texts as written, and on symptom2disease the coarser paths cost more precision than
  they gained recall;
- ``abbreviation``: a short form and a long form ("GERD" / "gastroesophageal reflux disease"),
  when either is an alias or the text defines one by the other;
- ``window``: every content word of a multi-word alias (its root, for a lower-case alias)
  within a short window of one sentence, in any order ("pain in my back" -> "back pain",
  "muscles feel painful" -> "muscle pain");
- ``head``: the head word alone names a two-or-more-word alias of exactly one entity
  ("rash" -> "skin rash"), for aliases without function words;
- ``partial``: some content words of a multi-word lower-case alias, within its window, that
  carry at least ``partial_coverage`` of the alias's word weight, where a word weighs its IDF
  over the KG's own lower-case aliases ("rash" -> "skin rash": "skin" names many entities,
  "rash" one; "nails have little dents" -> "small dents in nails"); a match without the
  alias's head word (the last content word before any function word: "rash", "loss" of "loss
  of appetite") needs ``HEADLESS_MARGIN`` more, and a single word must be the alias's head and
  the head of every KG name holding it ("rash" is; "skin", a modifier in "skin rash", is not
  for "yellowish skin"). Its similarity is ``0.5 + 0.3 * coverage``. Only words no path above
  covers are used;
- ``fuzzy``: aliases sharing the most character 3-grams with the span (nlp/ngram_index.py),
  re-scored by edit ratio, for spans holding a word the lemma tables do not know (typos such
  as "influensa", "psoriasys"); the similarity is that ratio;
- ``semantic`` (opt-in, when a `SemanticCandidates` is given): word n-grams that no path above
  covers, whose embedding is close to an alias's ("exhausted" -> "fatigue", "throwing up" ->
  "vomiting"); the similarity is that cosine (see nlp/semantic.py).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from kg.graph import KnowledgeGraph
from kg.search import normalize
from nlp.abbreviations import find_definitions, fits
from nlp.alias_arrays import (
    PRIME,
    SEED,
    AliasTables,
    Hasher,
    KeyTable,
    build_tables,
    content_words,
    head_word,
    is_acronym,
)
from nlp.keys import JOINERS, Lemmatizer, root
from nlp.linker_settings import LINKER_DEFAULTS
from nlp.ngram_index import Hit, NgramIndex

if TYPE_CHECKING:
    from nlp.semantic import SemanticCandidates


class MatchSettings(Protocol):
    """How names are matched: `nlp.linker_settings.LinkerSettings` (which documents each one)
    and the `KGLinker` that reads them from its config both have these."""

    @property
    def min_alias_length(self) -> int: ...
    @property
    def stop_aliases(self) -> Collection[str]: ...
    @property
    def fuzzy_threshold(self) -> float: ...
    @property
    def window_slack(self) -> int: ...
    @property
    def head_match(self) -> bool: ...
    @property
    def partial_coverage(self) -> float: ...


HEADLESS_MARGIN = 0.1  # a partial match without the alias's head word needs this much more
KIND_SIMILARITY = {
    "exact": 1.0,
    "lemma": 0.95,
    "abbreviation": 0.9,
    "root": 0.9,
    "respelled": 0.88,
    "window": 0.85,
    "head": 0.75,
    "table": 0.9,
}
_WORD = re.compile(r"^[^\W\d_]+$")
RESPELL_RATIO = 0.85
_PRIME = np.uint64(PRIME)
MEMO = 200_000  # aliases and anchored entries kept rebuilt in memory
SPAN_MEMO = 20_000  # spans whose key and root candidates are kept
SENTENCE_ENDS = frozenset({".", "!", "?", ";"})  # windows never cross them


class MentionCandidate(NamedTuple):
    entity: int
    alias: str  # the alias that matched
    similarity: float  # string similarity of span and alias (semantic: cosine), in [0, 1]
    kind: str  # exact | lemma | root | respelled | table | abbreviation | window | head | partial | fuzzy | semantic


class Mention(NamedTuple):
    start: int  # token offsets in the Doc
    end: int
    candidates: list[MentionCandidate]

    @property
    def best(self) -> float:
        return max(c.similarity for c in self.candidates)


class _Alias(NamedTuple):
    entity: int
    text: str
    lower: tuple[str, ...]
    case_sensitive: bool  # short all-capital aliases ("AIDS") match only as written
    common: bool  # written in lower case: roots and spelling variants may reach it
    table: bool = False  # from an alias table, not the KG


class CandidateGenerator:
    """Alias tables over one KG, and `generate(doc)` that finds mentions in a Doc.

    Args:
        kg: the graph whose aliases are matched.
        tokenize: the pipeline's tokenizer (aliases are split the way texts are).
        lemmatizer: lemma keys for words.
        eligible: entity ids that may be linked (type filter applied by the caller).
        settings: how names are matched (minimum alias length, stop aliases, the fuzzy, window,
            head and partial paths' settings); the linker's defaults when not given.
        semantic: embedding candidates for the words no string path covers (the ``semantic``
            path); None: off.
        table_names: extra names per entity id, from an alias table (`AliasTable.resolve`).
        indexes: a folder where `save_indexes` wrote this generator's alias tables and n-gram
            indexes (same KG, same settings: the caller checks, see nlp/linker_index.py); None:
            build them. The tables are arrays (nlp/alias_arrays.py); an alias a look-up finds
            is rebuilt from its text (memoized), so memory grows with the names texts touch.
    """

    def __init__(
        self,
        kg: KnowledgeGraph,
        tokenize: Callable[[str], Doc],
        lemmatizer: Lemmatizer,
        eligible: set[int],
        settings: MatchSettings = LINKER_DEFAULTS,
        *,
        semantic: SemanticCandidates | None = None,
        table_names: dict[int, list[str]] | None = None,
        indexes: Path | None = None,
    ):
        self.kg = kg
        self.semantic = semantic
        self.lemma = lemmatizer
        self.eligible = eligible
        self.settings = settings
        self.stop_aliases = frozenset(normalize(a) for a in settings.stop_aliases)
        self._split = _splitter(tokenize)
        self._hash = Hasher()
        if indexes is not None:
            self.tables = AliasTables.load(indexes)
        else:
            self.tables = build_tables(
                kg,
                eligible,
                self._split,
                lemmatizer,
                min_alias_length=settings.min_alias_length,
                stop_aliases=self.stop_aliases,
                table_names=table_names or {},
            )
        t = self.tables
        self.max_words = t.max_words
        # entities that share a name (key or root) with another: the disambiguator fits its
        # context statistics over these
        self.ambiguous = t.ambiguous.tolist()
        self.by_keys = _Keys(self)
        self.spelling_words = t.spelling_words
        self.fuzzy_aliases = t.fuzzy_aliases
        self.spelling_index, self.fuzzy_index = self._indexes(indexes)
        self._known_words: set[str] | None = None  # lemma table's words (read on first use)
        self._respelled: dict[str, str | None] = {}
        self._fuzzy_memo: dict[str, list[Hit]] = {}
        self._aliases_memo: dict[int, tuple[_Alias, tuple[str, ...]]] = {}
        self._anchored: dict[tuple[str, str], list[Any]] = {}  # (table, word) -> entries
        self._keyed: dict[tuple[bool, tuple[str, ...]], list[_Alias]] = {}  # (roots?, key)
        self._span_memo: dict[tuple[Any, ...], dict[int, MentionCandidate]] = {}

    # ----- the n-gram indexes (built once per KG and settings; see nlp/linker_index.py) -----
    def _indexes(self, folder: Path | None) -> tuple[NgramIndex, NgramIndex]:
        if folder is not None:
            return (
                NgramIndex.load(folder, "spelling", self.spelling_words),
                NgramIndex.load(folder, "fuzzy", self.fuzzy_aliases),
            )
        return NgramIndex(self.spelling_words), NgramIndex(self.fuzzy_aliases)

    def save_indexes(self, folder: Path) -> None:
        """Write the alias tables and n-gram indexes to ``folder`` (see ``indexes`` in the
        class docstring)."""
        self.tables.save(folder)
        self.spelling_index.save(folder, "spelling")
        self.fuzzy_index.save(folder, "fuzzy")

    # ----- names, rebuilt from their text when a look-up finds them -----
    def _alias(self, i: int) -> tuple[_Alias, tuple[str, ...]]:
        """Alias ``i`` of the tables, and its lemma keys."""
        got = self._aliases_memo.get(i)
        if got is None:
            t = self.tables
            text, table = t.texts[i], bool(t.from_table[i])
            words = self._split(text)
            common = text == text.lower() and not table
            lower = tuple(w.lower() for w in words)
            alias = _Alias(int(t.entity[i]), text, lower, is_acronym(text), common, table)
            got = (alias, self.lemma.keys(words))
            if len(self._aliases_memo) > MEMO:
                self._aliases_memo.clear()
            self._aliases_memo[i] = got
        return got

    def _named(self, key: tuple[str, ...]) -> list[_Alias]:
        """The aliases whose lemma keys are ``key`` (memoized)."""
        found = self._keyed.get((False, key))
        if found is None:
            ids = self.tables.by_keys.get(self._hash.key(key))
            found = [a for a, keys in map(self._alias, ids) if keys == key]  # type: ignore[arg-type]
            self._remember((False, key), found)
        return found

    def _rooted(self, key: tuple[str, ...]) -> list[_Alias]:
        """The lower-case KG aliases whose roots are ``key`` (memoized)."""
        found = self._keyed.get((True, key))
        if found is None:
            ids = self.tables.by_roots.get(self._hash.key(key))
            found = [
                a
                for a, keys in map(self._alias, ids)  # type: ignore[arg-type]
                if a.common and tuple(map(root, keys)) == key
            ]
            self._remember((True, key), found)
        return found

    def _remember(self, key: tuple[bool, tuple[str, ...]], found: list[_Alias]) -> None:
        if len(self._keyed) > MEMO:
            self._keyed.clear()
        self._keyed[key] = found

    def _anchored_on(self, table: str, word: str) -> list[Any]:
        """The window (``windows``, ``root_windows``: ``(needed words, alias)``) or partial
        (``partials``: `_Partial`) entries anchored on ``word`` (memoized)."""
        entries = self._anchored.get((table, word))
        if entries is not None:
            return entries
        entries = []
        for i in getattr(self.tables, table).get(self._hash.one(word)):
            alias, keys = self._alias(int(i))
            content = content_words(keys)
            if table == "partials":
                roots = list(dict.fromkeys(map(root, content)))
                if word in roots:
                    weights = {r: self._idf(r) for r in roots}
                    total = sum(weights.values())
                    entries.append(_Partial(frozenset(roots), root(head_word(keys)), total, alias))
            else:
                needed = frozenset(map(root, content) if alias.common else content)
                if word in needed:
                    entries.append((needed, alias))
        if len(self._anchored) > MEMO:
            self._anchored.clear()
        self._anchored[table, word] = entries
        return entries

    def _idf(self, r: str) -> float:
        values = self.tables.idf.get(self._hash.one(r))
        return float(values[0]) if values else 0.0

    def _is_modifier(self, r: str) -> bool:
        return self._hash.one(r) in self.tables.modifiers

    def _known(self, k: str) -> bool:
        """Whether ``k`` is a word of the lemma table, a stop word or an alias word."""
        if self._known_words is None:
            self._known_words = set(self.lemma.vocabulary()) | set(STOP_WORDS)
        return k in self._known_words or self._hash.one(k) in self.tables.alias_words

    # ----- generation -----
    def generate(self, doc: Doc) -> list[Mention]:
        """Every (possibly overlapping) mention in ``doc`` with its candidates."""
        toks = [(t.i, t.text, t.lower_) for t in doc if not t.is_space and t.text not in JOINERS]
        lemmas = [self.lemma(w) for _, w, _ in toks]
        variants = [self._respell(k) for k in lemmas]
        keys = [v or k for k, v in zip(lemmas, variants, strict=True)]
        words = _Words(
            pos=[i for i, _, _ in toks],
            text=[w for _, w, _ in toks],
            lower=[low for _, _, low in toks],
            keys=keys,
            roots=[root(k) for k in keys],
            respelled=[v is not None for v in variants],
        )
        found: dict[tuple[int, int], dict[int, MentionCandidate]] = defaultdict(dict)

        def add(a: int, b: int, cand: MentionCandidate) -> None:
            """Words a..b-1 may name ``cand.entity``; keep the best candidate per entity."""
            span = (words.pos[a], words.pos[b - 1] + 1)
            old = found[span].get(cand.entity)
            if old is None or old.similarity < cand.similarity:
                found[span][cand.entity] = cand

        self._aliases(words, found)
        self._windows(words, add)
        self._abbreviations(words, add)
        if self.settings.partial_coverage < 1.0:
            self._partial(words, found, add)
        if self.settings.head_match:
            sim = KIND_SIMILARITY["head"]
            for a, k in enumerate(words.keys):
                found_heads = self.tables.heads.get(self._hash.one(k)) if _WORD.match(k) else []
                if found_heads:
                    e = int(found_heads[0])
                    add(a, a + 1, MentionCandidate(e, self.kg.label(e), sim, "head"))
        self._fuzzy(words, found, add)
        if self.semantic is not None:
            self._semantic(self.semantic, words, found, add)
        for span, cands in self._defined_abbreviations(doc, found).items():
            for c in cands:
                found[span].setdefault(c.entity, c)
        return [Mention(s, e, list(c.values())) for (s, e), c in sorted(found.items()) if c]

    def _semantic(
        self,
        semantic: SemanticCandidates,
        words: _Words,
        found: dict[tuple[int, int], dict[int, MentionCandidate]],
        add: _Add,
    ) -> None:
        """Embedding candidates for the words that no mention found so far covers."""
        covered = {i for (s, e), cands in found.items() if cands for i in range(s, e)}
        flags = [p in covered for p in words.pos]
        for a, b, e, cosine in semantic.generate(words.text, flags):
            similarity = min(max(cosine, 0.0), 1.0)  # float16 vectors may round past 1
            add(a, b, MentionCandidate(e, self.kg.label(e), similarity, "semantic"))

    def _respell(self, key: str) -> str | None:
        """The alias word ``key`` is a spelling variant of, if any (memoized per word)."""
        if key in self._respelled:
            return self._respelled[key]
        best: str | None = None
        if (
            len(key) >= 5
            and self._hash.one(key) not in self.tables.alias_words
            and self._hash.one(root(key)) not in self.tables.alias_roots
            and key not in STOP_WORDS
            and _WORD.match(key)
        ):
            score = RESPELL_RATIO
            for hit in self.spelling_index.search(key, limit=10, min_dice=0.2, candidates=50):
                word = self.spelling_words[hit.id]
                if word[0] == key[0] and abs(len(word) - len(key)) <= 2 and hit.ratio >= score:
                    best, score = word, hit.ratio
        if len(self._respelled) > 1_000_000:
            self._respelled.clear()
        self._respelled[key] = best
        return best

    def _aliases(
        self, words: _Words, found: dict[tuple[int, int], dict[int, MentionCandidate]]
    ) -> None:
        """``exact``, ``lemma``, ``respelled``, ``table`` and ``root`` candidates. They depend
        only on the span's words, keys and respelling, so each span's candidates are memoized
        (a common word names hundreds of entities of a large KG); this path runs first, so
        each span's entry in ``found`` is new."""
        keys = words.keys
        named = self._spans_in(self.tables.by_keys, keys)
        rooted = self._spans_in(self.tables.by_roots, words.roots)
        for a, b in sorted(named | rooted):
            respelled = any(words.respelled[a:b])
            memo_key = (tuple(words.text[a:b]), tuple(keys[a:b]), respelled)
            best = self._span_memo.get(memo_key)
            if best is None:
                best = self._span_candidates(words, a, b, (a, b) in named, (a, b) in rooted)
                if len(self._span_memo) > SPAN_MEMO:
                    self._span_memo.clear()
                self._span_memo[memo_key] = best
            if best:
                found[words.pos[a], words.pos[b - 1] + 1] = dict(best)

    def _span_candidates(
        self, words: _Words, a: int, b: int, has_name: bool, has_root: bool
    ) -> dict[int, MentionCandidate]:
        """The best candidate per entity that words ``a..b-1`` name by key or root."""
        keys, lows = words.keys, words.lower
        exact = self._named(tuple(keys[a:b])) if has_name else []
        respelled = any(words.respelled[a:b])
        cands: list[tuple[_Alias, str]] = []
        for alias in exact:
            if alias.case_sensitive and " ".join(words.text[a:b]) != alias.text:
                continue
            kind = "exact" if tuple(lows[a:b]) == alias.lower else "lemma"
            kind = "respelled" if respelled else kind
            cands.append((alias, "table" if alias.table else kind))
        if not exact and has_root:
            rooted_aliases = self._rooted(tuple(words.roots[a:b]))
            cands = [(alias, "root") for alias in rooted_aliases if not alias.case_sensitive]
        best: dict[int, MentionCandidate] = {}
        for alias, kind in cands:  # keep the best candidate per entity (see `add`)
            sim = KIND_SIMILARITY[kind]
            old = best.get(alias.entity)
            if old is None or old.similarity < sim:
                best[alias.entity] = MentionCandidate(alias.entity, alias.text, sim, kind)
        return best

    def _spans_in(self, table: KeyTable, keys: list[str]) -> set[tuple[int, int]]:
        """The spans ``(a, b)`` of at most ``max_words`` words whose key ``keys[a:b]`` has its
        hash in ``table``: every span of one length hashed and searched at once (most spans
        name nothing)."""
        n = len(keys)
        if not n or not len(table):
            return set()
        word = self._hash.word
        words = np.array([word(k) for k in keys], dtype=np.uint64)
        h = np.full(n, SEED, dtype=np.uint64)
        parts = []
        for length in range(1, min(self.max_words, n) + 1):
            h = (h[: n - length + 1] ^ words[length - 1 :]) * _PRIME  # (wraps: mod 2**64)
            parts.append(h)
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

    def _short_forms(self, letter: str) -> list[_Alias]:
        """The acronym aliases starting with ``letter`` (memoized)."""
        entries = self._anchored.get(("short_forms", letter))
        if entries is None:
            ids = self.tables.short_forms.get(self._hash.key((letter,)))
            entries = self._anchored["short_forms", letter] = [self._alias(int(i))[0] for i in ids]
        return entries

    def _windows(self, words: _Words, add: _Add) -> None:
        """Each alias whose content words (roots, for a lower-case alias) all occur within
        ``len + window_slack`` words of its rarest one, inside one sentence; of overlapping
        windows for one alias, only those that hold no tighter one are kept ("filled with
        pus-filled pimples" -> "pus-filled pimples")."""
        n = len(words.keys)
        # sentence of each word: a window never reaches past a sentence end
        sentence = list(itertools.accumulate(w in SENTENCE_ENDS for w in words.text))
        found: dict[_Alias, set[tuple[int, int]]] = defaultdict(set)
        spaces = ((words.keys, "windows"), (words.roots, "root_windows"))
        for (keys, windows), a in itertools.product(spaces, range(n)):
            k = keys[a]
            entries = self._anchored_on(windows, k)
            if not entries:
                continue
            # only aliases whose every word is in the sentence can match: a set test in C
            # skips the scan for the many anchored on a frequent word
            inside = {keys[j] for j in range(n) if sentence[j] == sentence[a]}
            for content, alias in [e for e in entries if e[0] <= inside]:
                reach = len(content) + self.settings.window_slack
                where: dict[str, list[int]] = defaultdict(list)
                for j in range(max(0, a - reach + 1), min(n, a + reach)):
                    if keys[j] in content and keys[j] != k and sentence[j] == sentence[a]:
                        where[keys[j]].append(j)
                if len(where) + 1 != len(content):
                    continue
                first, last = min(
                    ((min(a, *c), max(a, *c)) for c in itertools.product(*where.values())),
                    key=lambda span: (span[1] - span[0], span[0]),
                )
                if last - first + 1 <= reach:
                    found[alias].add((first, last + 1))
        sim = KIND_SIMILARITY["window"]
        for alias, spans in found.items():
            for a, b in spans:
                if not any(c >= a and d <= b and (c, d) != (a, b) for c, d in spans):
                    add(a, b, MentionCandidate(alias.entity, alias.text, sim, "window"))

    def _partial(
        self, words: _Words, found: dict[tuple[int, int], dict[int, MentionCandidate]], add: _Add
    ) -> None:
        """``partial`` candidates (see the module docstring) over the words no mention covers."""
        covered = {i for (s, e), cands in found.items() if cands for i in range(s, e)}
        roots, n = words.roots, len(words.roots)
        free = [words.pos[j] not in covered for j in range(n)]
        sentence = list(itertools.accumulate(w in SENTENCE_ENDS for w in words.text))
        floor = self.settings.partial_coverage
        for a in range(n):
            if not free[a]:
                continue
            for entry in self._anchored_on("partials", roots[a]):
                reach = len(entry.roots) + self.settings.window_slack
                near: dict[str, int] = {roots[a]: a}
                for j in range(max(0, a - reach + 1), min(n, a + reach)):
                    r = roots[j]
                    usable = r in entry.roots and free[j] and sentence[j] == sentence[a]
                    if usable and (r not in near or abs(j - a) < abs(near[r] - a)):
                        near[r] = j
                if len(near) == len(entry.roots):
                    continue  # every word: the window path's match
                if len(near) == 1 and (roots[a] != entry.head or self._is_modifier(roots[a])):
                    continue  # one word alone: only a head that never modifies ("rash")
                coverage = sum(self._idf(r) for r in near) / entry.total
                needed = floor if entry.head in near else floor + HEADLESS_MARGIN
                first, last = min(near.values()), max(near.values())
                if coverage < needed or last - first + 1 > reach:
                    continue
                sim = round(0.5 + 0.3 * coverage, 4)
                add(
                    first,
                    last + 1,
                    MentionCandidate(entry.alias.entity, entry.alias.text, sim, "partial"),
                )

    def _abbreviations(self, words: _Words, add: _Add) -> None:
        sim, text, n = KIND_SIMILARITY["abbreviation"], words.text, len(words.text)
        for a, word in enumerate(text):
            if len(word) >= 3 and is_acronym(word):  # a short form in the text, a long alias
                s = _short(word)
                ids = self.tables.long_forms.get(self._hash.key((s[0], s[-1])))
                forms = [self._alias(int(i))[0] for i in ids]
                hits = {al.entity: al for al in forms if _long_fits(word, al.text)}
                if len(hits) == 1:
                    (alias,) = hits.values()
                    add(a, a + 1, MentionCandidate(alias.entity, alias.text, sim, "abbreviation"))
            for alias in self._short_forms(words.lower[a][:1]):  # a long form in the text
                last = alias.text.rstrip("s")[-1].lower()
                for b in range(a + 2, min(a + len(alias.text) + 1, n) + 1):
                    if words.lower[b - 1][:1] == last and _long_fits(
                        alias.text, " ".join(text[a:b])
                    ):
                        add(a, b, MentionCandidate(alias.entity, alias.text, sim, "abbreviation"))

    def _defined_abbreviations(
        self, doc: Doc, found: dict[tuple[int, int], dict[int, MentionCandidate]]
    ) -> dict[tuple[int, int], list[MentionCandidate]]:
        """ "long form (SF)": each side inherits the other's candidates, and so do later SFs."""
        out: dict[tuple[int, int], list[MentionCandidate]] = {}
        if "(" not in doc.text:
            return out
        for d in find_definitions(doc):
            long_span = (d.long_form.start, d.long_form.end)
            short_span = (d.short_form.start, d.short_form.end)
            inherited = [
                c._replace(kind="abbreviation", similarity=min(c.similarity, 0.9))
                for c in (found.get(long_span) or found.get(short_span) or {}).values()
            ]
            if not inherited:
                continue
            out.setdefault(long_span, inherited)
            for t in doc[d.short_form.start :]:
                if t.text == d.short_form.text:
                    out.setdefault((t.i, t.i + 1), inherited)
        return out

    def _fuzzy(
        self, words: _Words, found: dict[tuple[int, int], dict[int, MentionCandidate]], add: _Add
    ) -> None:
        covered = {i for (s, e) in found for i in range(s, e)}
        keys, n = words.keys, len(words.keys)
        usable = [
            words.pos[j] not in covered and _WORD.match(keys[j]) is not None for j in range(n)
        ]
        unknown = [len(k) >= 4 and not self._known(k) for k in keys]
        queries: list[tuple[int, int, str]] = []
        for a in range(n):
            if not usable[a] or keys[a] in STOP_WORDS:
                continue
            for b in range(a + 1, min(a + 3, n) + 1):
                if not usable[b - 1]:
                    break
                if any(unknown[a:b]) and keys[b - 1] not in STOP_WORDS:
                    queries.append((a, b, " ".join(words.text[a:b])))
        if not queries:
            return
        for a, b, text in queries:
            for hit in self._fuzzy_hits(normalize(text)):
                alias = self.fuzzy_aliases[hit.id]
                t = self.tables
                for e in t.fuzzy_entities[t.fuzzy_indptr[hit.id] : t.fuzzy_indptr[hit.id + 1]]:
                    add(a, b, MentionCandidate(int(e), alias, round(hit.ratio, 4), "fuzzy"))

    def _fuzzy_hits(self, query: str) -> list[Hit]:
        """The fuzzy index's hits for ``query`` at or above the threshold (memoized)."""
        hits = self._fuzzy_memo.get(query)
        if hits is None:
            floor = self.settings.fuzzy_threshold
            found = self.fuzzy_index.search(query, limit=5, min_dice=floor / 2, candidates=50)
            hits = [h for h in found if h.ratio >= floor]
            if len(self._fuzzy_memo) > 100_000:
                self._fuzzy_memo.clear()
            self._fuzzy_memo[query] = hits
        return hits


class _Partial(NamedTuple):
    """A multi-word lower-case alias as partial matching sees it."""

    roots: frozenset[str]  # its content words' roots
    head: str  # the root of its head word
    total: float  # the IDF sum of its roots
    alias: _Alias


class _Keys:
    """The lemma keys of every alias, as a read-only set (``key in generator.by_keys``);
    iterating rebuilds each alias's keys, so it costs as much as building the tables."""

    def __init__(self, generator: CandidateGenerator):
        self._generator = generator

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and bool(self._generator._named(key))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        g = self._generator
        for i in range(len(g.tables.texts)):
            yield g.lemma.keys(g._split(g.tables.texts[i]))


class _Words(NamedTuple):
    """The words of a Doc that matching looks at (spaces and joiners dropped)."""

    pos: list[int]  # token index in the Doc
    text: list[str]
    lower: list[str]
    keys: list[str]  # lemma keys (of the alias word, for a respelled word)
    roots: list[str]  # derivational roots of the keys
    respelled: list[bool]  # the word was replaced by an alias word it is a variant of


_Add = Callable[[int, int, MentionCandidate], None]


def _splitter(tokenize: Callable[[str], Doc]) -> Callable[[str], Sequence[str]]:
    """The words of an alias as the tokenizer splits them, minus spaces and joiners. Names of
    plain words (all letters, or all digits) and single spaces ("abdominal pain", "Pixel 8")
    are split on spaces: the tokenizer gives
    the same words, unless one is a special case ("cannot" -> "can", "not"), and building a
    Doc per alias is most of the cost of building the linker over a large KG."""
    owner = getattr(tokenize, "__self__", None)  # a Language's make_doc, or a Tokenizer's call
    rules = getattr(getattr(owner, "tokenizer", owner), "rules", None)
    special = frozenset(rules) if rules is not None else None

    def split(text: str) -> Sequence[str]:
        words = text.split(" ")
        if special is not None and _PLAIN.match(text) and special.isdisjoint(words):
            return words
        return [t.text for t in tokenize(text) if not t.is_space and t.text not in JOINERS]

    return split


_PLAIN = re.compile(
    r"^(?:[^\W\d_]+|[0-9]+)(?: (?:[^\W\d_]+|[0-9]+))*$"
)  # words of letters or digits


def _short(short: str) -> str:
    """A short form as `_long_fits` compares it: lower case, a plural "s" dropped."""
    plural = len(short) > 2 and short.endswith("s") and short[:-1].isupper()
    return (short[:-1] if plural else short).lower()


def _long_fits(short: str, long: str) -> bool:
    """Whether ``long`` (2 to ``len(short) + 1`` words, no punctuation) spells out ``short``:
    its first and last words start with the short form's first and last letters, the initials
    of its content words appear in the short form in order, and the letters fit
    (Schwartz-Hearst). "gastroesophageal reflux disease" spells out "GERD"; "a burning feeling
    and skin" does not spell out "AIDS"."""
    words = long.split()
    s = _short(short)
    if not 2 <= len(words) <= len(s) + 1 or not all(w.isalpha() for w in words):
        return False
    if words[0][0].lower() != s[0] or words[-1][0].lower() != s[-1]:
        return False
    letters = iter(s)
    initials = [w[0].lower() for w in words if w.lower() not in STOP_WORDS]
    return all(any(c == i for c in letters) for i in initials) and fits(s, long)
