"""Request and response bodies of the HTTP API (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from fusion.prediction import LinkedEntity, Prediction
from kg.described_path import DescribedPath, Node

_KINDS = {list: "an array", dict: "an object", bool: "a boolean", type(None): "null"}


class PredictBody(BaseModel):
    """Texts to classify. Limits on their number and length are set by the server.

    Strict: a value of the wrong JSON type is refused, never coerced (``"explain": "yes"`` or
    ``"top_k_paths": true`` would otherwise pass as ``true`` and ``1``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    texts: list[str] = Field(
        ..., min_length=1, description="texts to classify", examples=[["my new earbuds crackle"]]
    )
    explain: bool = Field(False, description="also return the supporting graph paths")
    top_k_paths: int = Field(3, ge=1, description="paths per text when explaining")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """One error naming the unknown fields, as pydantic's one per field would (60,000 of
        them in a 1 MB body took 0.6 s of the event loop)."""
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                shown = ", ".join(map(repr, unknown[:5]))
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise PydanticCustomError(
                    "unknown_fields",
                    "unknown field(s) {shown}{more}; the body takes texts, explain and top_k_paths",
                    {"shown": shown[:300], "more": more},
                )
        return data

    @field_validator("texts", mode="before")
    @classmethod
    def _texts_are_strings(cls, value: Any) -> Any:
        """One error, for the first item that is not a string. Pydantic describes every bad
        item: 490,000 numbers in a 1 MB body took 3.5 s of the event loop, stalling every
        other client, to say the same thing 490,000 times."""
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise PydanticCustomError(
                        "string_type",
                        "texts[{i}] is {kind}, not a string; send each text as a JSON string",
                        {"i": i, "kind": _KINDS.get(type(item), "a number")},
                    )
        return value


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class TextAnswer(Prediction):
    """One text's answer: its `fusion.prediction.Prediction`, or, for a text that failed on its
    own, `error` (the label is then null and the other fields empty); the request's other texts
    are still answered."""

    # Widened for the failed texts alone; an answered text has the label of its Prediction.
    label: str | None = Field(  # type: ignore[assignment]
        default=None, description="the predicted class; null with `error`"
    )
    probabilities: dict[str, float] = Field(default={}, description="calibrated, per class")
    entities: list[LinkedEntity] = Field(
        default=[], description="the linked mentions, in text order"
    )
    error: ErrorDetail | None = Field(default=None, description="why this text got no prediction")


class Anonymized(BaseModel):
    """What the server's ``--anonymize`` redacted from one text."""

    redactions: dict[str, int] = Field(
        description="placeholders put in, by type (PERSON, EMAIL, PHONE, ADDRESS, IBAN, CARD, SSN)"
    )


class PredictResponse(BaseModel):
    model_version: str
    kg_fingerprint: str
    predictions: list[TextAnswer]
    anonymized: list[Anonymized] | None = Field(
        default=None,
        description="with the server's --anonymize, one entry per text: the model saw, and "
        "`predictions` show, the redacted texts; null when it is off",
    )
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


class PathsResponse(BaseModel):
    source: Node
    target: Node
    paths: list[DescribedPath]


class TriplesResponse(BaseModel):
    added_triples: int
    new_entities: int
    kg: dict[str, Any]
    saved_as: str = Field(
        description="the file of the hot-triples folder that now holds the body; empty when "
        "every fact in it was in the KG already (nothing was saved)"
    )


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
    code: {"model": ErrorResponse}
    for code in (400, 401, 403, 404, 408, 409, 413, 415, 422, 503, 504)
}
