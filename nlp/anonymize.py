"""Redact personal data from texts: `Anonymizer` finds it and puts a typed placeholder in its
place ("call [PERSON] on [PHONE]").

What it finds: shaped data by tested patterns and checksums (`nlp.pii_patterns`), person names
by a gazetteer-and-cue spaCy component (`nlp.pii_names`), and, with a trained spaCy NER pipeline
named, that pipeline's PERSON and place entities too. Overlapping finds are resolved by
`PRIORITY` (a checksummed number beats a phone number that overlaps it), then by length.

KG names are not personal data: with ``protect`` (a function giving the character spans of the
KG mentions a linker finds in each text), a name or place that overlaps a KG mention is kept.
Shaped data (e-mail, phone, IBAN, card, SSN) is redacted wherever it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from kg.errors import KGFuseError
from nlp.pii_patterns import PHONE_REGIONS, PiiSpan, find_patterns

if TYPE_CHECKING:
    from spacy.language import Language

# The placeholder of each type: stable, part of the output format (documented in the README).
PLACEHOLDERS = {
    "PERSON": "[PERSON]",
    "EMAIL": "[EMAIL]",
    "PHONE": "[PHONE]",
    "ADDRESS": "[ADDRESS]",
    "IBAN": "[IBAN]",
    "CARD": "[CARD]",
    "SSN": "[SSN]",
    "LOCATION": "[LOCATION]",
}
PRIORITY = ("IBAN", "CARD", "SSN", "EMAIL", "ADDRESS", "PHONE", "PERSON", "LOCATION")
# Types whose text may be a KG entity's name, and so is kept where a KG mention is linked.
PROTECTABLE = frozenset({"PERSON", "LOCATION", "ADDRESS"})
# A trained pipeline's entity labels (OntoNotes and WikiNER schemes) -> our types.
NER_TYPES = dict(PERSON="PERSON", PER="PERSON", GPE="LOCATION", LOC="LOCATION", FAC="LOCATION")

# The KG mentions of each text, as (start, end) character spans.
Protect = Callable[[list[str]], list[list[tuple[int, int]]]]


class AnonymizeError(KGFuseError):
    """Anonymization cannot run as asked (e.g. the named spaCy pipeline is not installed)."""


class Redacted(NamedTuple):
    """One text after redaction: the new ``text``, the ``spans`` redacted (offsets into the
    original text) and how many of each type."""

    text: str
    spans: list[PiiSpan]
    counts: dict[str, int]


def pii_pipeline(spacy_model: str | None = None) -> Language:
    """A blank English pipeline (or the trained one named) with the person-name component."""
    import spacy

    import nlp.pii_names  # noqa: F401  (registers the kgfuse_person_names factory)

    if spacy_model is None:
        pipeline = spacy.blank("en")
    else:
        try:
            pipeline = spacy.load(spacy_model)
        except OSError as e:
            raise AnonymizeError(
                f"cannot load the spaCy pipeline {spacy_model!r}: it is not installed or not a "
                "pipeline folder; install it (pip install its package) or leave --spacy-model "
                "out to use the built-in name finder alone"
            ) from e
    pipeline.add_pipe("kgfuse_person_names", last=True)
    return pipeline


def resolve(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans in text order: by `PRIORITY`, then the longer, then the earlier."""
    taken: list[PiiSpan] = []
    order = {t: n for n, t in enumerate(PRIORITY)}
    for span in sorted(spans, key=lambda s: (order[s.type], s.start - s.end, s.start)):
        if all(span.end <= t.start or span.start >= t.end for t in taken):
            taken.append(span)
    return sorted(taken)


def replace_spans(text: str, spans: Sequence[PiiSpan]) -> str:
    """``text`` with each of the (non-overlapping, sorted) ``spans`` replaced by its
    placeholder."""
    out, at = [], 0
    for span in spans:
        out += [text[at : span.start], PLACEHOLDERS[span.type]]
        at = span.end
    return "".join([*out, text[at:]])


def mention_spans(spans: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """The character spans of one text's linked mentions (`nlp.linker.linked_entities`
    records): the ``protected`` spans of `Anonymizer.redact`."""
    return [(e["start"], e["end"]) for e in spans]


class Anonymizer:
    """Finds and redacts personal data.

    Args:
        spacy_model: an installed trained spaCy pipeline (or its folder) whose PERSON and place
            entities are redacted too; None: the built-in name finder alone.
        regions: regions a phone number without a +country code is read in.
        protect: the KG mentions of each text; names and places overlapping them are kept.
    """

    def __init__(
        self,
        spacy_model: str | None = None,
        regions: Sequence[str] = PHONE_REGIONS,
        protect: Protect | None = None,
    ):
        self.nlp = pii_pipeline(spacy_model)
        self.regions = tuple(regions)
        self.protect = protect

    def detect(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """The personal data of each text (overlapping; before protection)."""
        from nlp.pii_names import SPANS_KEY

        found = []
        for text, doc in zip(texts, self.nlp.pipe(list(texts), batch_size=256), strict=True):
            spans = find_patterns(text, self.regions)
            spans += [
                PiiSpan(s.start_char, s.end_char, "PERSON", "names")
                for s in doc.spans.get(SPANS_KEY, [])
            ]
            spans += [
                PiiSpan(e.start_char, e.end_char, NER_TYPES[e.label_], "ner")
                for e in doc.ents
                if e.label_ in NER_TYPES
            ]
            found.append(spans)
        return found

    def redact(
        self, texts: Sequence[str], protected: Sequence[Sequence[tuple[int, int]]] | None = None
    ) -> list[Redacted]:
        """Each text with its personal data replaced by placeholders; names and places that
        overlap a KG mention (``protected`` spans of each text, else those ``protect`` finds)
        are kept."""
        texts = list(texts)
        if protected is None:
            protected = self.protect(texts) if self.protect else [[] for _ in texts]
        out = []
        for text, spans, keep in zip(texts, self.detect(texts), protected, strict=True):
            spans = resolve(
                s
                for s in spans
                if s.type not in PROTECTABLE or not any(s.start < e and b < s.end for b, e in keep)
            )
            out.append(
                Redacted(replace_spans(text, spans), spans, dict(Counter(s.type for s in spans)))
            )
        return out
