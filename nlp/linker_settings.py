"""The settings of the `kg_linker` component, with their defaults: the one place they are defined.

nlp/linker.py reads its defaults from `LINKER_DEFAULTS`, ``kgfuse link --threshold`` shows the
same default, and a training config's ``linker`` section (fusion/settings.py) reuses these
fields, descriptions included, with `linker_field`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

# Common words that also name entities somewhere; never linked unless the user says otherwise.
DEFAULT_STOP_ALIASES = tuple(
    (
        "a an the it is as at be can do go he in may me no not of on or so to up us we will all any "
        "one new may march long back best feel home help well time"
    ).split()
)

# Strict: a YAML `yes` or "3" is refused, not read as true or 3; a number may be an integer.
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


@dataclass(frozen=True, config=ConfigDict(extra="forbid", use_attribute_docstrings=True))
class LinkerSettings:
    """The tunable settings of `nlp.linker.KGLinker` (its graph, index, alias table, semantic
    candidates and disambiguation weights are given apart)."""

    threshold: Number = Field(default=0.55, ge=0.0, le=1.0)
    """minimum final score of a link"""
    max_candidates: Int = Field(default=10, ge=1)
    """ranked candidates kept per linked span (Span._.kg_candidates)"""
    types: tuple[str, ...] = ()
    """link only entities of these rdf:type IRIs (empty: any type)"""
    link_classes: Bool = False
    """also link class nodes (entities that are others' types)"""
    min_alias_length: Int = Field(default=3, ge=1)
    """shorter aliases are never matched"""
    stop_aliases: tuple[str, ...] = DEFAULT_STOP_ALIASES
    """aliases never matched (common English words)"""
    fuzzy_threshold: Number = Field(default=0.8, gt=0.0, le=1.0)
    """minimum edit ratio of a fuzzy match (and half of it, of its 3-gram Dice)"""
    window_slack: Int = Field(default=3, ge=0)
    """extra words allowed inside a window match"""
    head_match: Bool = False
    """link a head word alone when it names one alias ('legs' -> 'swollen legs'): more coverage,
    less precision"""
    partial_coverage: Number = Field(default=0.6, gt=0.0, le=1.0)
    """share of a multi-word alias's IDF weight a partial match must hold; 1.0 turns partial
    matching off"""
    max_length: Int = Field(default=100_000, ge=1)
    """longer texts are refused with an error"""
    overwrite_ents: Bool = False
    """replace overlapping entities already in doc.ents"""
    spans_key: str = "kg"
    """the doc.spans key of the linked spans"""

    def spacy_config(self) -> dict[str, Any]:
        """These settings as a spaCy component config (lists, not tuples)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


LINKER_DEFAULTS = LinkerSettings()


def linker_field(name: str) -> Any:
    """A copy of `LinkerSettings`'s field ``name`` (default, bounds and description), to declare
    the same setting in another model: ``threshold: float = linker_field("threshold")``."""
    fields: dict[str, FieldInfo] = vars(LinkerSettings)["__pydantic_fields__"]
    return copy.copy(fields[name])


def field_help(cls: type, name: str) -> str:
    """The description of the settings class ``cls``'s field ``name`` (its attribute docstring)
    as one help sentence: the docstring's line breaks become spaces."""
    description = " ".join((vars(cls)["__pydantic_fields__"][name].description or "").split())
    return description[:1].upper() + description[1:] + "."


def linker_help(name: str) -> str:
    """Field ``name``'s description as a CLI help sentence (``kgfuse link``'s options)."""
    return field_help(LinkerSettings, name)


SPACY_MAX_LENGTH = 1_000_000  # spaCy refuses a longer text before any component sees it


def text_limit(config: dict[str, Any]) -> int:
    """The most characters a text may have for the pipeline `from_kg` builds (on blank English)
    from linker ``config``: the linker's ``max_length``, and spaCy's own limit above it."""
    return min(int(config.get("max_length", LINKER_DEFAULTS.max_length)), SPACY_MAX_LENGTH)
