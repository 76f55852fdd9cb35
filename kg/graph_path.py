"""A path through the KG, the one type for path search results (`kg.paths`), the paths that
explain a prediction (`fusion.explain`) and the paths the HTTP API returns.

`GraphPath` holds entity and relation ids, which mean something only next to their graph;
`GraphPath.describe` turns it into a `kg.described_path.DescribedPath`, with IRIs and labels,
which is what the CLI's ``--json`` output, a prediction's JSON record and the HTTP responses
carry. That module is imported on the first ``describe``: its pydantic models cost ``import kg``
a third of its time and 10 MB, and loading or querying a KG never shows a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kg.protocol import describe_triple
from kg.values import Triple

if TYPE_CHECKING:
    from kg.described_path import DescribedPath
    from kg.protocol import Graph

SCORE_DIGITS = 6  # a described path's score and attribution are rounded to this many decimals


@dataclass(frozen=True)
class GraphPath:
    """A walk ``entities[0] -> ... -> entities[-1]``; hop ``i`` is ``triples[i]``, which joins
    ``entities[i]`` and ``entities[i + 1]`` in either direction.

    Args:
        entities: entity ids, from the first entity (an explanation: the linked entity) on.
        triples: one per hop.
        score: higher is better (see `DescribedPath.score`).
        attribution: an explanation's gradient sum (paths encoder), else None.
    """

    entities: tuple[int, ...]
    triples: tuple[Triple, ...]
    score: float
    attribution: float | None = None

    @property
    def hops(self) -> int:
        return len(self.triples)

    def text(self, graph: Graph) -> str:
        """'Psoriasis --has symptom--> joint pain' (arrows follow each triple's direction)."""
        _check_graph(graph)
        parts = [graph.label(self.entities[0])]
        for here, t in zip(self.entities[1:], self.triples, strict=True):
            name = graph.relation_label(t.relation)
            arrow = f" --{name}--> " if t.object == here else f" <--{name}-- "
            parts.append(arrow + graph.label(here))
        return "".join(parts)

    def describe(self, graph: Graph) -> DescribedPath:
        """The path in IRIs and labels of ``graph`` (the graph its ids belong to)."""
        from kg.described_path import DescribedPath, Hop  # pydantic: only where paths are shown

        attribution = self.attribution
        return DescribedPath(
            score=round(self.score, SCORE_DIGITS),
            attribution=None if attribution is None else round(attribution, SCORE_DIGITS),
            text=self.text(graph),
            hops=[Hop.model_validate(describe_triple(graph, t)) for t in self.triples],
        )


def _check_graph(graph: object) -> None:
    """A path's ids mean something only next to a graph: refuse anything else, with the fix."""
    if not hasattr(type(graph), "relation_label"):
        raise TypeError(
            f"a path is read with the graph that found it: p.text(graph), p.describe(graph); "
            f"got {type(graph).__name__} {graph!r}"
        )
