"""Request and response bodies of the HTTP API (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictBody(BaseModel):
    """Texts to classify. Limits on their number and length are set by the server."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(
        ..., min_length=1, description="texts to classify", examples=[["my new earbuds crackle"]]
    )
    explain: bool = Field(False, description="also return the supporting graph paths")
    top_k_paths: int = Field(3, ge=1, description="paths per text when explaining")


class Node(BaseModel):
    iri: str
    label: str


class Hop(BaseModel):
    subject: Node
    predicate: Node
    object: Node


class SupportingPath(BaseModel):
    score: float = Field(
        description="how much the predicted class's log-odds drop without this path"
    )
    attribution: float | None = Field(
        None,
        description="the paths encoder's own score for the path: the summed gradients of the "
        "predicted class's log-odds with respect to its steps (absent for other encoders)",
    )
    text: str = Field(description="the path in words")
    hops: list[Hop] = Field(description="each hop is one triple of the KG")


class LinkedEntity(BaseModel):
    text: str
    start: int = Field(description="character offset of the mention in the text")
    end: int
    iri: str
    label: str
    type: str = Field("", description="the entity's KG type, when the linker knows it")
    score: float
    candidates: list[dict[str, Any]] = Field([], description="ranked (iri, score) candidates")


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class Prediction(BaseModel):
    """One text's answer. A text that failed on its own carries `error` instead (its other
    fields are then empty); the request's other texts are still answered."""

    text: str
    label: str | None = Field(None, description="the predicted class; null with `error`")
    probabilities: dict[str, float] = Field({}, description="per class; empty with `error`")
    entities: list[LinkedEntity] = []
    graph_weight: float | None = Field(None, description="the fusion gate: 0 = text only")
    paths: list[SupportingPath] | None = Field(None, description="when explain is true")
    timings_ms: dict[str, float] = {}
    error: ErrorDetail | None = Field(None, description="why this text got no prediction")


class PredictResponse(BaseModel):
    model_version: str
    kg_fingerprint: str
    predictions: list[Prediction]
    timings_ms: dict[str, float] = Field(description="queue wait and total time of the request")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class EntityMatchOut(BaseModel):
    iri: str
    label: str
    alias: str
    score: float


class SearchResponse(BaseModel):
    query: str
    matches: list[EntityMatchOut]


class NeighborOut(BaseModel):
    direction: str = Field(description="'out' (entity is the subject) or 'in'")
    predicate: Node
    node: Node


class EntityResponse(BaseModel):
    iri: str
    label: str
    aliases: list[str]
    description: str
    types: list[Node]
    degree: int
    neighbors: list[NeighborOut] = Field(description="the first `limit` edges")


class KGPathOut(BaseModel):
    score: float
    text: str
    hops: list[Hop]


class PathsResponse(BaseModel):
    source: Node
    target: Node
    paths: list[KGPathOut]


class TriplesResponse(BaseModel):
    added_triples: int
    new_entities: int
    kg: dict[str, Any]
    saved_as: str


class ModelResponse(BaseModel):
    version: str
    labels: list[str]
    mode: str
    metrics: dict[str, Any]
    training: dict[str, Any]
    versions: dict[str, Any]
    encoder: str | None
    kg: dict[str, Any]
    limits: dict[str, Any]


class Health(BaseModel):
    status: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 503, 504)
}
