"""How triples become a compiled KG: which predicates carry labels, descriptions and types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kg import vocab
from kg.errors import KGFuseError


@dataclass(frozen=True)
class KGConfig:
    """Settings of the compiler; stored in the compiled folder so a reload knows how it was built.

    Attributes:
        label_predicates: literal predicates that name an entity, best first. The best label in
            an accepted language becomes the display label; every one becomes an alias.
        alias_predicates: further literal predicates whose values are aliases only.
        description_predicates: literal predicates whose values describe an entity (its text).
        type_predicates: predicates whose objects are the entity's types (``rdf:type``).
        type_edges: also keep type facts as graph edges. Off by default: class nodes are hubs
            that join every instance in two hops and drown the informative neighbours.
        languages: language tags accepted for labels, aliases and descriptions ("" = no tag;
            "en" also accepts "en-GB"). Empty: accept every language.
        base_iri: namespace under which plain names from delimited (TSV/CSV) files become IRIs.
    """

    label_predicates: tuple[str, ...] = vocab.DEFAULT_LABEL_PREDICATES
    alias_predicates: tuple[str, ...] = vocab.DEFAULT_ALIAS_PREDICATES
    description_predicates: tuple[str, ...] = vocab.DEFAULT_DESCRIPTION_PREDICATES
    type_predicates: tuple[str, ...] = vocab.DEFAULT_TYPE_PREDICATES
    type_edges: bool = False
    languages: tuple[str, ...] = ("en", "")
    base_iri: str = "http://kgfuse.local/"

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("type_edges",):
                if not isinstance(value, bool):
                    problems.append(f"'{f.name}' must be true or false (got {value!r})")
            elif f.name == "base_iri":
                if not isinstance(value, str) or not value.endswith(("/", "#")) or ":" not in value:
                    problems.append(
                        f"'base_iri' must be an absolute IRI ending in '/' or '#' (got {value!r})"
                    )
            else:
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, f.name, value)
                if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                    problems.append(f"'{f.name}' must be a list of strings (got {value!r})")
        if problems:
            raise KGFuseError("invalid KG config: " + "; ".join(problems))

    def accepts_language(self, lang: str | None) -> bool:
        if not self.languages:
            return True
        lang = (lang or "").lower()
        return any(
            lang == want or (want and lang.startswith(want + "-")) for want in self.languages
        )

    def language_rank(self, lang: str | None) -> int:
        """0 for the most preferred accepted language; used to pick the display label."""
        lang = (lang or "").lower()
        for rank, want in enumerate(self.languages):
            if lang == want or (want and lang.startswith(want + "-")):
                return rank
        return len(self.languages)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KGConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise KGFuseError(
                f"unknown KG config key(s) {unknown}; expected some of {sorted(known)}"
            )
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)
