"""A path in IRIs and labels: what `kg.graph_path.GraphPath.describe` returns, and what the
CLI's ``--json`` output, a prediction's JSON record and the HTTP responses carry (pydantic
models, so the API's schema documents each field)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Node(BaseModel):
    """An entity or a relation of the KG."""

    iri: str
    label: str


class Hop(BaseModel):
    """One triple of the KG."""

    subject: Node
    predicate: Node
    object: Node


class DescribedPath(BaseModel):
    """A `GraphPath` in IRIs and labels."""

    score: float = Field(
        description="path search: exp(-cost), higher for shorter paths through rarer nodes; "
        "an explanation: how much the predicted class's log-odds drop without this path"
    )
    attribution: float | None = Field(
        default=None,
        description="the paths encoder's own score for an explanation: the summed gradients of "
        "the predicted class's log-odds with respect to its steps (absent otherwise)",
    )
    text: str = Field(description="the path in words, arrows following each triple")
    hops: list[Hop] = Field(description="each hop is one triple of the KG")
