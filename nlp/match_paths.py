"""The string paths of candidate generation, one function each (see nlp/candidates.py for
what each path matches and how sure it is). Each reads the words of one Doc (`Words`), looks
names up through an `AliasLookup`, and records what it finds in ``found`` directly or through
``add`` (which keeps the best candidate per span and entity)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from kg.search import normalize
from nlp.abbreviations import find_definitions, fits
from nlp.alias_arrays import WORD, is_acronym
from nlp.alias_lookup import Alias, AliasLookup
from nlp.mentions import MentionCandidate

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
SPAN_MEMO = 20_000  # spans whose key and root candidates are kept
SENTENCE_ENDS = frozenset({".", "!", "?", ";"})  # windows never cross them


class Words(NamedTuple):
    """The words of a Doc that matching looks at (spaces and joiners dropped)."""

    pos: list[int]  # token index in the Doc
    text: list[str]
    lower: list[str]
    keys: list[str]  # lemma keys (of the alias word, for a respelled word)
    roots: list[str]  # derivational roots of the keys
    respelled: list[bool]  # the word was replaced by an alias word it is a variant of


Found = dict[tuple[int, int], dict[int, MentionCandidate]]  # Doc span -> entity -> candidate
Add = Callable[[int, int, MentionCandidate], None]  # words a..b-1 may name an entity
SpanMemo = dict[tuple[Any, ...], dict[int, MentionCandidate]]


def names(lookup: AliasLookup, words: Words, found: Found, memo: SpanMemo) -> None:
    """``exact``, ``lemma``, ``respelled``, ``table`` and ``root`` candidates. They depend
    only on the span's words, keys and respelling, so each span's candidates are memoized in
    ``memo`` (a common word names hundreds of entities of a large KG); this path runs first,
    so each span's entry in ``found`` is new."""
    keys = words.keys
    named = lookup.spans_in(lookup.tables.by_keys, keys)
    rooted = lookup.spans_in(lookup.tables.by_roots, words.roots)
    for a, b in sorted(named | rooted):
        respelled = any(words.respelled[a:b])
        memo_key = (tuple(words.text[a:b]), tuple(keys[a:b]), respelled)
        best = memo.get(memo_key)
        if best is None:
            best = _span_names(lookup, words, a, b, (a, b) in named, (a, b) in rooted)
            if len(memo) > SPAN_MEMO:
                memo.clear()
            memo[memo_key] = best
        if best:
            found[words.pos[a], words.pos[b - 1] + 1] = dict(best)


def _span_names(
    lookup: AliasLookup, words: Words, a: int, b: int, has_name: bool, has_root: bool
) -> dict[int, MentionCandidate]:
    """The best candidate per entity that words ``a..b-1`` name by key or root."""
    keys, lows = words.keys, words.lower
    exact = lookup.named(tuple(keys[a:b])) if has_name else []
    respelled = any(words.respelled[a:b])
    cands: list[tuple[Alias, str]] = []
    for alias in exact:
        if alias.case_sensitive and " ".join(words.text[a:b]) != alias.text:
            continue
        kind = "exact" if tuple(lows[a:b]) == alias.lower else "lemma"
        kind = "respelled" if respelled else kind
        cands.append((alias, "table" if alias.table else kind))
    if not exact and has_root:
        rooted_aliases = lookup.rooted(tuple(words.roots[a:b]))
        cands = [(alias, "root") for alias in rooted_aliases if not alias.case_sensitive]
    best: dict[int, MentionCandidate] = {}
    for alias, kind in cands:  # keep the best candidate per entity (see `add`)
        sim = KIND_SIMILARITY[kind]
        old = best.get(alias.entity)
        if old is None or old.similarity < sim:
            best[alias.entity] = MentionCandidate(alias.entity, alias.text, sim, kind)
    return best


def windows(lookup: AliasLookup, words: Words, add: Add, slack: int) -> None:
    """Each alias whose content words (roots, for a lower-case alias) all occur within
    ``len + slack`` words of its rarest one, inside one sentence; of overlapping windows for
    one alias, only those that hold no tighter one are kept ("filled with pus-filled pimples"
    -> "pus-filled pimples")."""
    n = len(words.keys)
    sentence = _sentences(words)
    found: dict[Alias, set[tuple[int, int]]] = defaultdict(set)
    widest = lookup.tables.max_words + slack  # the reach of the longest name
    for keys, table in ((words.keys, "windows"), (words.roots, "root_windows")):
        at: dict[tuple[int, str], list[int]] = {}  # (sentence, word) -> positions, on first use
        for a, k in enumerate(keys):
            if not lookup.anchored_on(table, k):
                continue
            if not at:
                for j, w in enumerate(keys):
                    at.setdefault((sentence[j], w), []).append(j)
            s = sentence[a]
            # only aliases whose every word is within reach, in the sentence, can match
            near = {
                keys[j]
                for j in range(max(0, a - widest + 1), min(n, a + widest))
                if sentence[j] == s
            }
            for content, alias in lookup.anchored_within(table, k, near):
                reach = len(content) + slack
                lo, hi = a - reach + 1, a + reach
                where = [[j for j in at[s, w] if lo <= j < hi] for w in content if w != k]
                if not all(where):
                    continue
                first, last = min(
                    ((min(a, *c), max(a, *c)) for c in itertools.product(*where)),
                    key=lambda span: (span[1] - span[0], span[0]),
                )
                if last - first + 1 <= reach:
                    found[alias].add((first, last + 1))
    sim = KIND_SIMILARITY["window"]
    for alias, spans in found.items():
        if len(spans) == 1:  # most aliases: nothing to compare (no generator per alias)
            ((a, b),) = spans
            add(a, b, MentionCandidate(alias.entity, alias.text, sim, "window"))
            continue
        for a, b in spans:
            if not any(c >= a and d <= b and (c, d) != (a, b) for c, d in spans):
                add(a, b, MentionCandidate(alias.entity, alias.text, sim, "window"))


def abbreviations(lookup: AliasLookup, words: Words, add: Add) -> None:
    """A short form in the text that spells out one entity's long alias, and a long form in
    the text that an acronym alias abbreviates."""
    sim, text, n = KIND_SIMILARITY["abbreviation"], words.text, len(words.text)
    for a, word in enumerate(text):
        if len(word) >= 3 and is_acronym(word):  # a short form in the text, a long alias
            s = _short(word)
            forms = lookup.long_forms(s[0], s[-1])
            hits = {al.entity: al for al in forms if _long_fits(word, al.text)}
            if len(hits) == 1:
                (alias,) = hits.values()
                add(a, a + 1, MentionCandidate(alias.entity, alias.text, sim, "abbreviation"))
        for alias in lookup.short_forms(words.lower[a][:1]):  # a long form in the text
            last = alias.text.rstrip("s")[-1].lower()
            for b in range(a + 2, min(a + len(alias.text) + 1, n) + 1):
                if words.lower[b - 1][:1] == last and _long_fits(alias.text, " ".join(text[a:b])):
                    add(a, b, MentionCandidate(alias.entity, alias.text, sim, "abbreviation"))


def partial(
    lookup: AliasLookup, words: Words, found: Found, add: Add, coverage: float, slack: int
) -> None:
    """``partial`` candidates (see nlp/candidates.py) over the words no mention covers: the
    words of an alias near one another that hold at least ``coverage`` of its IDF weight."""
    covered = {i for (s, e), cands in found.items() if cands for i in range(s, e)}
    roots, n = words.roots, len(words.roots)
    free = [words.pos[j] not in covered for j in range(n)]
    sentence = _sentences(words)
    for a in range(n):
        if not free[a]:
            continue
        for entry in lookup.anchored_on("partials", roots[a]):
            reach = len(entry.roots) + slack
            near: dict[str, int] = {roots[a]: a}
            for j in range(max(0, a - reach + 1), min(n, a + reach)):
                r = roots[j]
                usable = r in entry.roots and free[j] and sentence[j] == sentence[a]
                if usable and (r not in near or abs(j - a) < abs(near[r] - a)):
                    near[r] = j
            if len(near) == len(entry.roots):
                continue  # every word: the window path's match
            if len(near) == 1 and (roots[a] != entry.head or lookup.is_modifier(roots[a])):
                continue  # one word alone: only a head that never modifies ("rash")
            share = sum(lookup.idf(r) for r in near) / entry.total
            needed = coverage if entry.head in near else coverage + HEADLESS_MARGIN
            first, last = min(near.values()), max(near.values())
            if share < needed or last - first + 1 > reach:
                continue
            sim = round(0.5 + 0.3 * share, 4)
            alias = entry.alias
            add(first, last + 1, MentionCandidate(alias.entity, alias.text, sim, "partial"))


def heads(lookup: AliasLookup, words: Words, add: Add, label: Callable[[int], str]) -> None:
    """A word that is the head of the two-or-more-word aliases of exactly one entity."""
    sim = KIND_SIMILARITY["head"]
    for a, k in enumerate(words.keys):
        e = lookup.head(k)
        if e is not None:
            add(a, a + 1, MentionCandidate(e, label(e), sim, "head"))


def fuzzy(lookup: AliasLookup, words: Words, found: Found, add: Add) -> None:
    """Aliases close in spelling to spans of up to three uncovered words that hold a word the
    lemma tables do not know (typos)."""
    covered = {i for (s, e) in found for i in range(s, e)}
    keys, n = words.keys, len(words.keys)
    usable = [words.pos[j] not in covered and WORD.match(keys[j]) is not None for j in range(n)]
    unknown = [len(k) >= 4 and not lookup.known(k) for k in keys]
    queries: list[tuple[int, int, str]] = []
    for a in range(n):
        if not usable[a] or keys[a] in STOP_WORDS:
            continue
        for b in range(a + 1, min(a + 3, n) + 1):
            if not usable[b - 1]:
                break
            if any(unknown[a:b]) and keys[b - 1] not in STOP_WORDS:
                queries.append((a, b, " ".join(words.text[a:b])))
    for a, b, text in queries:
        for hit in lookup.fuzzy_hits(normalize(text)):
            alias = lookup.tables.fuzzy_aliases[hit.id]
            for e in lookup.fuzzy_entities(hit):
                add(a, b, MentionCandidate(e, alias, round(hit.ratio, 4), "fuzzy"))


def defined_abbreviations(doc: Doc, found: Found) -> dict[tuple[int, int], list[MentionCandidate]]:
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


def _sentences(words: Words) -> list[int]:
    """The sentence number of each word: a window never reaches past a sentence end."""
    return list(itertools.accumulate(w in SENTENCE_ENDS for w in words.text))


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
