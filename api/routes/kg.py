"""KG look-ups (read) and hot triples (admin): ``/v1/kg/...``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.auth import AdminAccess, ReadAccess
from api.deps import EngineDep, query_takes
from api.errors import APIError
from api.limits import GZIP_MAGIC, gunzipped
from api.schemas import (
    ERROR_RESPONSES,
    EntityResponse,
    PathsResponse,
    SearchResponse,
    TriplesResponse,
)
from kg.errors import EntityNotFoundError
from kg.formats import FORMATS, describe_formats
from nlp.texts import text_problem

router = APIRouter(prefix="/v1/kg", tags=["kg"], responses=ERROR_RESPONSES)

MEDIA_TYPES = {
    "text/turtle": "turtle",
    "application/n-triples": "ntriples",
    "application/n-quads": "nquads",
    "application/trig": "trig",
    "text/n3": "n3",
    "application/ld+json": "json-ld",
    "application/rdf+xml": "xml",
    "text/tab-separated-values": "tsv",
    "text/csv": "csv",
}


def _node(graph: Any, entity: int) -> dict[str, str]:
    return {"iri": graph.iri(entity), "label": graph.label(entity)}


def _refuse_blank(name: str, value: str, fix: str) -> None:
    """A 422 for a name of nothing but whitespace or invisible characters, which was a 404
    "no entity has the IRI or label ' '" (search refused it already)."""
    problem = text_problem(value)
    if problem is not None and problem.kind == "empty":
        raise APIError(
            422,
            "invalid_request",
            f"{name} is empty (only whitespace or invisible characters); {fix}",
        )


# An unknown query parameter is most likely the IRI's own '?', which ended the path.
IRI_HINT = ". If the IRI holds '?', percent-encode it as %3F (and '#' as %23)"


@router.get(
    "/entities/{iri:path}",
    response_model=EntityResponse,
    dependencies=[ReadAccess, query_takes("limit", hint=IRI_HINT)],
)
def entity(
    iri: str,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=0, le=1000)] = 50,
) -> dict[str, Any]:
    """One entity by IRI (or by label, when only one entity bears it) and its first edges."""
    _refuse_blank("the entity", iri, "put its IRI or label after /v1/kg/entities/")
    graph = engine.graph
    try:
        e = graph.resolve(iri)
    except EntityNotFoundError as error:
        if "://" not in iri:
            raise
        raise APIError(  # the client may have dropped a '#...' from the IRI
            404,
            "not_found",
            f"{error}; if the IRI holds '#' or '?', percent-encode them in the URL (%23, %3F)",
        ) from None
    neighbors = [
        {
            "direction": "out" if n.outgoing else "in",
            "predicate": {
                "iri": graph.relation_iri(n.relation),
                "label": graph.relation_label(n.relation),
            },
            "node": _node(graph, n.node),
        }
        for n in graph.neighbors_of(e)[:limit]
    ]
    return {
        **_node(graph, e),
        "aliases": graph.aliases_of(e),
        "description": graph.description(e),
        "types": [_node(graph, t) for t in graph.types_of(e)],
        "degree": graph.degree(e),
        "neighbors": neighbors,
    }


@router.get(
    "/search",
    response_model=SearchResponse,
    dependencies=[ReadAccess, query_takes("q", "limit")],
)
def search(
    engine: EngineDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="a name, typos allowed")],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Entities named like `q`: exact (case-insensitive) matches first, then fuzzy ones."""
    problem = text_problem(q)
    if problem is not None and problem.kind == "empty":
        raise APIError(
            422,
            "invalid_request",
            "q is empty (only whitespace or invisible characters); send a name to search for",
        )
    if problem is not None:
        raise APIError(422, "invalid_request", f"q {problem.message}")
    matches = engine.graph.search(q, limit=limit)
    return {
        "query": q,
        "matches": [
            {"iri": m.iri, "label": m.label, "alias": m.alias, "score": round(m.score, 6)}
            for m in matches
        ],
    }


@router.get(
    "/paths",
    response_model=PathsResponse,
    dependencies=[ReadAccess, query_takes("source", "target", "k", "max_hops")],
)
def paths(
    engine: EngineDep,
    source: Annotated[str, Query(min_length=1, description="IRI or label")],
    target: Annotated[str, Query(min_length=1, description="IRI or label")],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    max_hops: Annotated[int, Query(ge=1, le=4)] = 3,
) -> dict[str, Any]:
    """The top-k shortest paths between two entities, every hop a triple."""
    for name, value in (("source", source), ("target", target)):
        _refuse_blank(name, value, f"send an entity's IRI or label as {name}")
    graph = engine.graph
    s, t = graph.resolve(source), graph.resolve(target)
    found = graph.paths(s, t, k=k, max_hops=max_hops)
    return {
        "source": _node(graph, s),
        "target": _node(graph, t),
        "paths": [p.describe(graph) for p in found],
    }


def _format_of(request: Request, fmt: str | None) -> str:
    if fmt:
        return fmt
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]
    raise APIError(
        415,
        "unsupported_media_type",
        f"cannot tell the triple format from Content-Type {media or '(none)'!r}; send one of "
        f"{', '.join(MEDIA_TYPES)} or pass ?format= with one of {describe_formats()}",
    )


@router.post(
    "/triples",
    response_model=TriplesResponse,
    dependencies=[AdminAccess, query_takes("format")],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {m: {"schema": {"type": "string"}} for m in MEDIA_TYPES},
        }
    },
)
async def add_triples(
    request: Request,
    engine: EngineDep,
    format: Annotated[
        str | None, Query(description=f"one of {', '.join(FORMATS)} (else from Content-Type)")
    ] = None,
) -> dict[str, Any]:
    """Add triples to the live KG (admin). All or nothing; persisted beside the bundle; used by
    the next prediction without retraining."""
    fmt = _format_of(request, format)
    body = await request.body()
    if body[:2] == GZIP_MAGIC:
        body = gunzipped(body, engine.settings.max_body_bytes)
    if not body.strip():
        raise APIError(422, "bad_triples", "the request body is empty; send triples")
    return await engine.add_triples(body, fmt)
