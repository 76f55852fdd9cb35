"""Fuzzing the HTTP API: its request models, raw bodies, and schemathesis over every route.

Target: no input gives a 5xx. Bad input is a 4xx JSON error (api/errors.py); the server is
built with read and admin keys, and every request carries the admin key, so the admin routes
(``POST /v1/kg/triples``) are fuzzed too. Hot triples go to a scratch folder, not the bundle.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pydantic
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from api.routes.kg import MEDIA_TYPES
from api.schemas import PredictBody
from api.settings import ApiKeys, ServeSettings
from tests.fuzzing import TEXT, encode, json_values, mutated, nested_json

pytestmark = pytest.mark.integration

READ, ADMIN = "r" * 20, "a" * 20
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
TURTLE = (
    "@prefix ex: <http://example.org/tiny/> .\n"
    "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
    'ex:h5n1 rdfs:label "avian strain" ; ex:causedBy ex:influenza_virus .\n'
)


def serving_app(bundle: Path, scratch: Path) -> FastAPI:
    """An app for a private copy of ``bundle``, keys set, hot triples kept under ``scratch``."""
    copy = Path(shutil.copytree(bundle, scratch / "bundle"))
    settings = ServeSettings(
        bundle=copy,
        keys=ApiKeys(read=(READ,), admin=(ADMIN,)),
        max_wait_ms=0,
        hot_triples_dir=scratch / "hot-triples",
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def client(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = serving_app(tiny_bundle, tmp_path_factory.mktemp("fuzz-api"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# ----------------------------------------------------------------- request models


@given(value=json_values(huge=True))
@example(value={"texts": ["flu"], "top_k_paths": 10**5000})
@example(value={"texts": [[[[["x"]]]]], "explain": "yes"})
def test_predict_body_validates_or_says_why(value: Any) -> None:
    try:
        PredictBody.model_validate(value)
    except pydantic.ValidationError as e:
        assert e.errors()


@given(raw=st.one_of(TEXT, mutated('{"texts": ["my fever"], "explain": true, "top_k_paths": 2}')))
@example(raw=nested_json(100_000))
@example(raw='{"texts": ["x"], "top_k_paths": ' + "9" * 5000 + "}")
def test_predict_body_json_validates_or_says_why(raw: str) -> None:
    try:
        PredictBody.model_validate_json(encode(raw))
    except pydantic.ValidationError as e:
        assert e.errors()


# ----------------------------------------------------------------- raw bodies, in process


def assert_no_5xx(response: Any) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


@given(body=json_values(huge=False))
@example(body={"texts": ["flu"], "top_k_paths": 2**64})
@example(body={"texts": ["flu " * 10_000]})
def test_any_predict_body_gets_no_5xx(client: TestClient, body: Any) -> None:
    if isinstance(body, dict) and body and "texts" not in body:
        body = {"texts": list(body)}  # often a valid shape, with odd texts
    headers = {**HEADERS, "Content-Type": "application/json"}  # else the body is never parsed
    r = client.post("/v1/predict", content=json.dumps(body), headers=headers)
    assert_no_5xx(r)


@given(raw=st.one_of(st.binary(max_size=300), TEXT.map(encode)))
@example(raw=nested_json(100_000).encode())
@example(raw=b'{"texts": ["x"], "top_k_paths": ' + b"9" * 5000 + b"}")
@example(raw=b'{"texts": ["x"], "top_k_paths": 1e999}')
def test_any_predict_bytes_get_no_5xx(client: TestClient, raw: bytes) -> None:
    headers = {**HEADERS, "Content-Type": "application/json"}
    assert_no_5xx(client.post("/v1/predict", content=raw, headers=headers))


def test_a_lone_surrogate_in_predict_texts_gets_a_4xx(client: TestClient) -> None:
    body = b'{"texts": ["flu \\ud800"]}'
    headers = {**HEADERS, "Content-Type": "application/json"}
    response = client.post("/v1/predict", content=body, headers=headers)
    assert response.status_code == 422 and "texts[0]" in response.json()["error"]["message"]


@pytest.mark.parametrize("media", list(MEDIA_TYPES))
@given(data=st.data())
def test_any_triples_body_gets_no_5xx(client: TestClient, media: str, data: st.DataObject) -> None:
    body = data.draw(st.one_of(mutated(TURTLE).map(encode), st.binary(min_size=1, max_size=200)))
    headers = {**HEADERS, "Content-Type": media}
    assert_no_5xx(client.post("/v1/kg/triples", content=body, headers=headers))


@given(
    q=TEXT,
    iri=TEXT,
    k=st.one_of(st.integers(), st.sampled_from(["9" * 5000, "1e999", "-0", "x"])),
)
def test_any_lookup_gets_no_5xx(client: TestClient, q: str, iri: str, k: object) -> None:
    for url, params in (
        ("/v1/kg/search", {"q": q, "limit": k}),
        ("/v1/kg/paths", {"source": q, "target": iri, "k": k}),
        (f"/v1/kg/entities/{quote(encode(iri), safe='')}", {"limit": k}),
    ):
        assert_no_5xx(client.get(url, params=params, headers=HEADERS))


# ----------------------------------------------------------------- schemathesis

# The spec needs no bundle: building the app loads nothing (its lifespan does).
SPEC = create_app(ServeSettings(bundle=Path("unused"))).openapi()
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item]
CASES = [  # (method, path, mode): invalid input only where an operation takes input
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & set(SPEC["paths"][path][method.lower()])
]


@pytest.fixture(scope="module")
def api_schema(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app in process (schemathesis runs its lifespan), through its own OpenAPI spec."""
    app = serving_app(tiny_bundle, tmp_path_factory.mktemp("schemathesis"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_is_fuzzed() -> None:
    assert ("POST", "/v1/kg/triples") in OPERATIONS and ("POST", "/v1/predict") in OPERATIONS
    assert len(OPERATIONS) >= 9


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
@given(data=st.data())
def test_no_route_answers_a_5xx(
    api_schema: Any, method: str, path: str, mode: GenerationMode, data: st.DataObject
) -> None:
    """Schemathesis' cases for every operation of the spec, valid ones and invalid ones,
    sent with the admin key. (Its pytest plugin does not run under pytest 9: cases are drawn
    from each operation's strategy instead.)"""
    case = data.draw(api_schema[path][method].as_strategy(mode), label="case")
    response = case.call(headers=HEADERS)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    )
