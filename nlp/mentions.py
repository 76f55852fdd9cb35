"""What candidate generation hands the disambiguator: the spans of a Doc that may name KG
entities, each with its candidates."""

from __future__ import annotations

from typing import NamedTuple


class MentionCandidate(NamedTuple):
    entity: int
    alias: str  # the alias that matched
    similarity: float  # string similarity of span and alias (semantic: cosine), in [0, 1]
    kind: str  # the path that found it: see nlp/candidates.py (exact | lemma | ... | semantic)


class Mention(NamedTuple):
    start: int  # token offsets in the Doc
    end: int
    candidates: list[MentionCandidate]

    @property
    def best(self) -> float:
        return max(c.similarity for c in self.candidates)
