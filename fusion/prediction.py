"""`Prediction`: one text's answer, the same for the Python API (`Predictor.predict`), the CLI's
JSON Lines (``kgfuse predict --json`` and ``-o``) and the HTTP API (``POST /v1/predict``)."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from kg.described_path import DescribedPath
from kg.errors import KGFuseError


class Candidate(BaseModel):
    iri: str
    score: float


class LinkedEntity(BaseModel):
    """A mention linked to a KG entity (`nlp.linker.linked_entities`, plus the entity's label)."""

    text: str = Field(description="the mention as written")
    start: int = Field(description="character offset of the mention in the text")
    end: int = Field(description="character offset just past the mention")
    iri: str
    type: str = Field(default="", description="the entity's KG type, when the linker knows it")
    score: float = Field(description="the link score of the best candidate")
    candidates: list[Candidate] = Field(default=[], description="ranked (iri, score) candidates")
    label: str = Field(description="the entity's label in the KG")


class Prediction(BaseModel):
    """One text's predicted label, calibrated probabilities, linked entities and (when asked
    for) the graph paths that support the label, best first."""

    text: str
    label: str = Field(description="the predicted class")
    probabilities: dict[str, float] = Field(description="calibrated, per class")
    entities: list[LinkedEntity] = Field(description="the linked mentions, in text order")
    graph_weight: float | None = Field(
        default=None, description="the fusion gate: 0 = text only (null for models without one)"
    )
    paths: list[DescribedPath] | None = Field(default=None, description="when paths were asked for")
    timings_ms: dict[str, float] = Field(
        default={}, description="linking, model and explanation time of the batch the text was in"
    )

    def json_line(self) -> str:
        """One JSON Lines record: every field but the timings (they differ between runs, and a
        file of predictions is byte for byte the same when made again) and those that are
        null; non-ASCII text is kept as is."""
        record = self.model_dump(mode="json", exclude={"timings_ms"}, exclude_none=True)
        try:  # NaN and Infinity are not JSON: strict readers (jq, browsers) refuse the file
            line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
        except ValueError:
            raise PredictionError(
                f"the prediction for {_shown(self.text)} holds a number that is not finite "
                f"(probabilities {self.probabilities}, graph_weight {self.graph_weight}): JSON "
                "cannot carry it; a model whose outputs are NaN has diverged: retrain it"
            ) from None
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as e:
            raise PredictionError(
                f"the prediction for {_shown(self.text)} holds a lone surrogate "
                f"U+{ord(line[e.start]):04X}, which UTF-8 cannot write; build its text from "
                "valid Unicode"
            ) from None
        return line


class PredictionError(KGFuseError):
    """A prediction cannot be written as JSON (a value that is not finite, or not Unicode)."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
