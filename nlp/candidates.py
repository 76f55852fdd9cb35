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
  of appetite") needs ``match_paths.HEADLESS_MARGIN`` more, and a single word must be the alias's head and
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

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from spacy.tokens import Doc

from kg.graph import KnowledgeGraph
from kg.search import normalize
from nlp import match_paths
from nlp.alias_arrays import AliasTables
from nlp.alias_build import build_tables
from nlp.alias_lookup import AliasLookup, alias_splitter
from nlp.keys import JOINERS, Lemmatizer, root
from nlp.linker_settings import LINKER_DEFAULTS
from nlp.match_paths import Found, Words
from nlp.mentions import Mention, MentionCandidate
from nlp.ngram_index import NgramIndex

if TYPE_CHECKING:
    from nlp.semantic import SemanticCandidates

__all__ = ["CandidateGenerator", "MatchSettings", "Mention", "MentionCandidate"]


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
            is rebuilt from its text (memoized, nlp/alias_lookup.py), so memory grows with the
            names texts touch.
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
        split = alias_splitter(tokenize)
        if indexes is not None:
            self.tables = AliasTables.load(indexes)
        else:
            self.tables = build_tables(
                kg,
                eligible,
                split,
                lemmatizer,
                min_alias_length=settings.min_alias_length,
                stop_aliases=self.stop_aliases,
                table_names=table_names or {},
            )
        # entities that share a name (key or root) with another: the disambiguator fits its
        # context statistics over these
        self.ambiguous = self.tables.ambiguous.tolist()
        spelling, fuzzy = self._indexes(indexes)
        self.lookup = AliasLookup(
            self.tables, split, lemmatizer, spelling, fuzzy, settings.fuzzy_threshold
        )
        self.by_keys = _Keys(self.lookup)
        self._span_memo: match_paths.SpanMemo = {}

    # ----- the n-gram indexes (built once per KG and settings; see nlp/linker_index.py) -----
    def _indexes(self, folder: Path | None) -> tuple[NgramIndex, NgramIndex]:
        t = self.tables
        if folder is not None:
            return (
                NgramIndex.load(folder, "spelling", t.spelling_words),
                NgramIndex.load(folder, "fuzzy", t.fuzzy_aliases),
            )
        return NgramIndex(t.spelling_words), NgramIndex(t.fuzzy_aliases)

    def save_indexes(self, folder: Path) -> None:
        """Write the alias tables and n-gram indexes to ``folder`` (see ``indexes`` in the
        class docstring)."""
        self.tables.save(folder)
        self.lookup.spelling_index.save(folder, "spelling")
        self.lookup.fuzzy_index.save(folder, "fuzzy")

    # ----- generation -----
    def generate(self, doc: Doc) -> list[Mention]:
        """Every (possibly overlapping) mention in ``doc`` with its candidates: the paths of
        the module docstring, from most to least certain; the later ones see what the earlier
        ones found."""
        words = self._words(doc)
        found: Found = defaultdict(dict)

        def add(a: int, b: int, cand: MentionCandidate) -> None:
            """Words a..b-1 may name ``cand.entity``; keep the best candidate per entity."""
            span = (words.pos[a], words.pos[b - 1] + 1)
            old = found[span].get(cand.entity)
            if old is None or old.similarity < cand.similarity:
                found[span][cand.entity] = cand

        settings, lookup = self.settings, self.lookup
        match_paths.names(lookup, words, found, self._span_memo)
        match_paths.windows(lookup, words, add, settings.window_slack)
        match_paths.abbreviations(lookup, words, add)
        if settings.partial_coverage < 1.0:
            match_paths.partial(
                lookup, words, found, add, settings.partial_coverage, settings.window_slack
            )
        if settings.head_match:
            match_paths.heads(lookup, words, add, self.kg.label)
        match_paths.fuzzy(lookup, words, found, add)
        if self.semantic is not None:
            self._semantic(self.semantic, words, found, add)
        for span, cands in match_paths.defined_abbreviations(doc, found).items():
            for c in cands:
                found[span].setdefault(c.entity, c)
        return [Mention(s, e, list(c.values())) for (s, e), c in sorted(found.items()) if c]

    def _words(self, doc: Doc) -> Words:
        """The words of ``doc`` that matching looks at, with their keys and roots; a word that
        is a spelling variant of an alias word takes that word's key."""
        toks = [(t.i, t.text, t.lower_) for t in doc if not t.is_space and t.text not in JOINERS]
        lemmas = [self.lemma(w) for _, w, _ in toks]
        variants = [self.lookup.respell(k) for k in lemmas]
        keys = [v or k for k, v in zip(lemmas, variants, strict=True)]
        return Words(
            pos=[i for i, _, _ in toks],
            text=[w for _, w, _ in toks],
            lower=[low for _, _, low in toks],
            keys=keys,
            roots=[root(k) for k in keys],
            respelled=[v is not None for v in variants],
        )

    def _semantic(
        self, semantic: SemanticCandidates, words: Words, found: Found, add: match_paths.Add
    ) -> None:
        """Embedding candidates for the words that no mention found so far covers."""
        covered = {i for (s, e), cands in found.items() if cands for i in range(s, e)}
        flags = [p in covered for p in words.pos]
        for a, b, e, cosine in semantic.generate(words.text, flags):
            similarity = min(max(cosine, 0.0), 1.0)  # float16 vectors may round past 1
            add(a, b, MentionCandidate(e, self.kg.label(e), similarity, "semantic"))


class _Keys:
    """The lemma keys of every alias, as a read-only set (``key in generator.by_keys``);
    iterating rebuilds each alias's keys, so it costs as much as building the tables."""

    def __init__(self, lookup: AliasLookup):
        self._lookup = lookup

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and bool(self._lookup.named(key))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        lookup = self._lookup
        for i in range(len(lookup.tables.texts)):
            yield lookup.lemma.keys(lookup.split(lookup.tables.texts[i]))
