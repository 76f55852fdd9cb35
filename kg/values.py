"""Plain values every kg module shares: a triple and an edge as ids, and IRI naming helpers.

They sit below the graph classes and the algorithms, so each of those imports them at the top
of its module, with no import circle to dodge.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote


class Triple(NamedTuple):
    """One fact of the graph, as ids: ``(subject, relation, object)``."""

    subject: int
    relation: int
    object: int


class Neighbor(NamedTuple):
    """An edge seen from one entity: ``outgoing`` means ``(entity, relation, node)``."""

    relation: int
    node: int
    outgoing: bool


def local_name(iri: str) -> str:
    """The part of an IRI after its last '#', '/' or ':' (percent-escapes kept)."""
    for sep in ("#", "/", ":"):
        cut = iri.rstrip(sep).rsplit(sep, 1)
        if len(cut) == 2 and cut[1]:
            return cut[1]
    return iri


def humanize(name: str) -> str:
    """'hasSymptom' -> 'has symptom'; 'has_primary_type' -> 'has primary type'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", unquote(name).replace("_", " "))
    return " ".join(w.lower() if w[1:].islower() else w for w in spaced.split())
