"""The service as a careless client meets it: every bad request gets a 4xx JSON error naming the
problem and the fix, and inside a batch a bad text fails only itself."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api import limits
from api.app import create_app
from api.settings import ApiKeys, ServeSettings

pytestmark = pytest.mark.integration

EX = "http://example.org/tiny/"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle))) as c:
        yield c


def post_raw(client: TestClient, body: bytes) -> Any:
    return client.post("/v1/predict", content=body, headers=JSON)


# ----------------------------------------------------------------- one bad text, one failure

BAD_TEXTS = [  # (the text as a JSON string literal, its error code)
    ('""', "empty_text"),
    ('" \\t\\n\\u200b\\u0000"', "empty_text"),
    ('"fever \\ud800 cough"', "invalid_text"),
    ('"' + "flu " * 1300 + '"', "text_too_long"),
]


@pytest.mark.parametrize(("bad", "code"), BAD_TEXTS, ids=[c for _, c in BAD_TEXTS])
def test_a_bad_text_in_a_batch_gets_its_own_error_and_the_others_are_answered(
    client: TestClient, bad: str, code: str
) -> None:
    body = '{"texts": ["a bad case of influenza", ' + bad + ', "covid-19 and a cough"]}'
    r = post_raw(client, body.encode())
    assert r.status_code == 200, r.text
    first, refused, last = r.json()["predictions"]
    assert first["label"] in {"flu", "viral"} and first["error"] is None
    assert last["label"] in {"flu", "viral"} and last["error"] is None
    assert last["text"] == "covid-19 and a cough"  # answers stay in the order of the texts
    assert refused["label"] is None and refused["probabilities"] == {}
    assert refused["error"]["status"] == 422 and refused["error"]["code"] == code
    assert "texts[1]" in refused["error"]["message"]


def test_a_request_whose_only_texts_are_bad_gets_the_first_ones_error(client: TestClient) -> None:
    r = post_raw(client, b'{"texts": ["  ", "\\ud800"]}')
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_text"
    assert "texts[0]" in r.json()["error"]["message"]


def test_a_refused_text_is_not_echoed_unredacted_when_the_server_anonymizes(
    tiny_bundle: Path,
) -> None:
    too_long = "Alice Smith, alice@example.com, has the flu. " * 120
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle, anonymize=True))) as c:
        r = c.post("/v1/predict", json={"texts": ["Bob Jones has a fever", too_long]})
    assert r.status_code == 200, r.text
    answered, refused = r.json()["predictions"]
    assert "Bob Jones" not in answered["text"] and answered["error"] is None
    assert refused["text"] == "" and refused["error"]["code"] == "text_too_long"
    assert [len(a["redactions"]) > 0 for a in r.json()["anonymized"]] == [True, False]


# ----------------------------------------------------------------- the body itself


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("explain", "yes"),
        ("explain", "true"),
        ("explain", 1),
        ("top_k_paths", "3"),
        ("top_k_paths", True),
        ("top_k_paths", 2.0),
    ],
)
def test_a_field_of_the_wrong_json_type_is_refused_not_coerced(
    client: TestClient, field: str, value: Any
) -> None:
    r = client.post("/v1/predict", json={"texts": ["influenza"], field: value})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["message"].startswith(f"{field}: Input should be a valid")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"texts": ["caf\xe9 fever"]}'.encode("latin-1"), "not UTF-8 (byte 0xE9 at offset 15)"),
        (b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nest too deep"),
    ],
    ids=["latin-1", "nested"],
)
def test_a_body_json_cannot_read_gets_422_saying_why(
    client: TestClient, body: bytes, problem: str
) -> None:
    r = post_raw(client, body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    message = r.json()["error"]["message"]
    assert message.startswith("the body is not valid JSON") and problem in message


@pytest.mark.parametrize(
    ("items", "kind"),
    [(b"1", "a number"), (b"null", "null"), (b'["flu"]', "an array"), (b"{}", "an object")],
)
def test_a_long_list_of_texts_that_are_not_strings_gets_one_error_for_the_first(
    client: TestClient, items: bytes, kind: str
) -> None:
    """490,000 numbers in a 1 MB body got 490,000 validation errors built, 3.5 s of the event
    loop during which no other client was answered, to list five of them."""
    body = b'{"texts": ["flu", ' + b",".join([items] * 100_000) + b"]}"
    r = post_raw(client, body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    message = r.json()["error"]["message"]
    assert message == f"texts[1] is {kind}, not a string; send each text as a JSON string"


def test_unknown_fields_get_one_error_naming_them_and_the_fields_the_body_takes(
    client: TestClient,
) -> None:
    """60,000 unknown keys in a 1 MB body got 60,000 errors built (0.6 s of the event loop);
    ``{"text": ...}`` got "texts: Field required; text: Extra inputs are not permitted"."""
    many = "{" + ",".join(f'"k{i}": 1' for i in range(60_000)) + ', "texts": ["flu"]}'
    r = post_raw(client, many.encode())
    assert r.status_code == 422 and r.json()["error"]["message"] == (
        "unknown field(s) 'k0', 'k1', 'k2', 'k3', 'k4' and 59995 more; "
        "the body takes texts, explain and top_k_paths"
    )
    r = client.post("/v1/predict", json={"text": "flu"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["message"].startswith("unknown field(s) 'text'; the body takes texts")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{'texts': ['flu']}", "enclosed in double quotes at line 1, column 2"),
        (b'{"texts": [\n  "flu",\n]}', "Expecting value at line 3, column 1"),
        (b'{"texts": ["flu\tfever"]}', "Invalid control character at line 1, column 16 (write"),
        (b'{"texts": ["flu"]} {}', "Extra data at line 1, column 20"),
    ],
    ids=["single-quotes", "trailing-comma", "raw-tab", "extra-data"],
)
def test_a_json_syntax_error_is_placed_and_shows_the_body_to_send(
    client: TestClient, body: bytes, problem: str
) -> None:
    """It was "the body is not valid JSON: Expecting value": neither where nor what to send."""
    r = post_raw(client, body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    message = r.json()["error"]["message"]
    assert message.startswith("the body is not valid JSON: ") and problem in message
    assert message.endswith('send an object such as {"texts": ["my new earbuds crackle"]}')


@pytest.mark.parametrize("number", [b"1" * 5000, b"-" + b"9" * 4301], ids=["texts", "negative"])
def test_a_number_too_long_for_python_gets_422_saying_so_not_a_bare_400(
    client: TestClient, number: bytes
) -> None:
    """A 5000-digit integer (valid JSON, past Python's 4300-digit guard) was a 400 "There was
    an error parsing the body", which said neither what was wrong nor what to send."""
    for body in (
        b'{"texts": [' + number + b"]}",
        b'{"texts": ["flu"], "top_k_paths": ' + number + b"}",
    ):
        r = post_raw(client, body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        message = r.json()["error"]["message"]
        assert "a number of more than 4300 digits" in message and '{"texts": [' in message


@pytest.mark.parametrize(
    ("request_kwargs", "status", "problem"),
    [
        ({"content": b'{"texts": ["flu"]}'}, 415, "(got none)"),
        (
            {"content": b'{"texts": ["flu"]}', "headers": {"content-type": "text/plain"}},
            415,
            "(got 'text/plain')",
        ),
        ({"data": {"texts": "flu"}}, 415, "(got 'application/x-www-form-urlencoded')"),
        ({"json": ["flu"]}, 422, "not an array"),
        ({"json": "flu"}, 422, "not a string"),
        ({"content": b"", "headers": JSON}, 422, "the body is empty"),
    ],
    ids=["no-content-type", "text-plain", "form", "array", "string", "empty"],
)
def test_a_body_that_is_not_a_json_object_gets_a_4xx_saying_what_to_send(
    client: TestClient, request_kwargs: dict[str, Any], status: int, problem: str
) -> None:
    """(Each was a 422 "body: Input should be a valid dictionary or object to extract fields
    from", or "body: Field required", which say neither what was wrong nor what to send.)"""
    r = client.post("/v1/predict", **request_kwargs)
    assert r.status_code == status and r.json()["error"]["status"] == status
    message = r.json()["error"]["message"]
    assert problem in message and '{"texts": [' in message
    if status == 415:
        assert r.json()["error"]["code"] == "unsupported_media_type"
        assert "Content-Type: application/json" in message


def _post_raw(
    app: Any, path: str, receive: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], str]:
    """POST ``path`` (100 bytes declared, the admin key) to ``app`` as the server would hand it
    over, its body parts from ``receive``: the messages the app sent, and /metrics after."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/json" if path == "/v1/predict" else b"text/turtle"),
        (b"content-length", b"100"),
        (b"authorization", f"Bearer {ADMIN}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def request() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=20)

    with TestClient(app) as c:  # the lifespan loads the model
        assert c.portal is not None
        c.portal.call(request)
        metrics = c.get("/metrics").text
    return sent, metrics


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/kg/triples"])
def test_a_body_that_stops_arriving_gets_408_and_frees_the_connection(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A client that hung mid-upload (5 of 100 bytes sent) held its request open for good."""
    monkeypatch.setattr(limits, "BODY_IDLE_S", 0.05)
    app = create_app(ServeSettings(bundle=tiny_bundle, keys=ApiKeys(admin=(ADMIN,))))
    parts = [{"type": "http.request", "body": b'{"tex', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop()
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    sent, _ = _post_raw(app, path, receive)
    start, body = sent[0], json.loads(sent[1]["body"])
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    assert body["error"]["code"] == "request_timeout"
    assert body["error"]["message"].startswith("the request body stopped arriving")


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/kg/triples"])
def test_a_client_that_disconnects_mid_body_is_no_server_error(
    tiny_bundle: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On /v1/kg/triples it was a 500 (the deploy's 5xx alert counts those) with "unexpected
    error" and a traceback logged, for each client that hung up mid-upload."""
    app = create_app(ServeSettings(bundle=tiny_bundle, keys=ApiKeys(admin=(ADMIN,))))
    parts = [{"type": "http.disconnect"}, {"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> dict[str, Any]:
        return parts.pop()

    sent, metrics = _post_raw(app, path, receive)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["code"] == "client_disconnected"
    assert f'route="{path}",status="500"' not in metrics
    assert "unexpected error" not in caplog.text


# ----------------------------------------------------------------- KG look-ups


def test_an_iri_cut_short_by_its_own_question_mark_is_refused_not_answered(
    client: TestClient,
) -> None:
    """``/v1/kg/entities/http://example.org/tiny/flu?v=2`` answered Influenza, the entity of
    the IRI before the '?', and never said the rest was dropped."""
    r = client.get(f"/v1/kg/entities/{EX}flu?v=2")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "'v'" in r.json()["error"]["message"] and "%3F" in r.json()["error"]["message"]
    r = client.get(f"/v1/kg/entities/{quote(EX + 'flu?v=2', safe=':/')}")  # encoded: looked up
    assert r.status_code == 404 and "%23" in r.json()["error"]["message"]
    assert client.get(f"/v1/kg/entities/{EX}flu?limit=1").status_code == 200


def test_a_query_parameter_a_route_would_ignore_is_refused_naming_what_it_takes(
    client: TestClient,
) -> None:
    """``POST /v1/predict?explain=true`` answered without paths, and ``?limt=1`` on search
    answered 10 matches: both silently ignored what the client asked for."""
    r = client.post("/v1/predict?explain=true", json={"texts": ["a bad case of influenza"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    message = r.json()["error"]["message"]
    assert "'explain'" in message and "explain and top_k_paths in the JSON body" in message
    r = client.get("/v1/kg/search", params={"q": "flu", "limt": 1})
    assert r.status_code == 422 and "'limt'" in r.json()["error"]["message"]
    assert "takes only q, limit" in r.json()["error"]["message"]
    r = client.get("/v1/kg/paths", params={"source": "flu", "target": "fever", "hops": 1})
    assert r.status_code == 422 and "'hops'" in r.json()["error"]["message"]
    assert client.get("/v1/kg/search", params={"q": "flu", "limit": 1}).status_code == 200


@pytest.mark.parametrize(
    "url", ["/v1/kg/search?q=flu&q=fever", "/v1/kg/entities/flu?limit=1&limit=5"]
)
def test_a_query_parameter_given_twice_is_refused_not_the_last_one_taken(
    client: TestClient, url: str
) -> None:
    """``?q=flu&q=fever`` searched for fever alone, silently."""
    r = client.get(url)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "is given 2 times; give it once" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "part", "problem"),
    [
        ("/v1/kg/search?q=%FF", "query", "byte 0xFF at offset 2"),
        ("/v1/kg/search?q=caf%E9", "query", "byte 0xE9 at offset 5"),  # latin-1
        ("/v1/kg/paths?source=flu&target=%ED%A0%80", "query", "byte 0xED at offset 18"),
        ("/v1/kg/entities/%FF", "path", "byte 0xFF at offset 16"),
    ],
    ids=["ff", "latin-1", "surrogate", "path"],
)
def test_a_url_whose_escapes_are_not_utf8_gets_400_not_an_answer_for_another_text(
    client: TestClient, url: str, part: str, problem: str
) -> None:
    """``?q=%FF`` searched for U+FFFD (200, no matches) and ``/entities/%FF`` said "no entity
    has the IRI or label '\ufffd'": the client's bytes were replaced, never refused."""
    r = client.get(url)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    message = r.json()["error"]["message"]
    assert message.startswith(f"the URL's {part} is not UTF-8") and problem in message
    assert "%C3%A9" in message
    assert client.get("/v1/kg/search?q=caf%C3%A9+fever").json()["query"] == "café fever"


def test_a_search_for_nothing_but_whitespace_gets_422(client: TestClient) -> None:
    r = client.get("/v1/kg/search", params={"q": " \t\u200b"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("q is empty")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/v1/kg/entities/", "the entity"),
        ("/v1/kg/entities/%20%E2%80%8B", "the entity"),
        ("/v1/kg/paths?source=%20&target=flu", "source"),
        ("/v1/kg/paths?source=flu&target=%00", "target"),
    ],
    ids=["no-entity", "blank-entity", "blank-source", "nul-target"],
)
def test_a_blank_entity_name_gets_422_like_a_blank_search(
    client: TestClient, url: str, name: str
) -> None:
    """They were a 404 "no entity has the IRI or label ''", as if the name had been looked up."""
    r = client.get(url)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["message"].startswith(f"{name} is empty")


# ----------------------------------------------------------------- probes and metrics


def test_health_and_readiness_answer_head_as_they_answer_get(tiny_bundle: Path) -> None:
    app = create_app(ServeSettings(bundle=tiny_bundle))
    loading = TestClient(app)  # the lifespan has not run: no model yet
    assert loading.head("/health").status_code == 200
    assert loading.head("/ready").status_code == loading.get("/ready").status_code == 503
    with TestClient(app) as c:
        r = c.head("/ready")
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "path", ["/v1/model", "/v1/kg/entities/flu", "/v1/kg/search?q=flu", "/metrics", "/", "/docs"]
)
def test_every_get_route_answers_head_as_it_answers_get_without_the_body(
    client: TestClient, path: str
) -> None:
    """HEAD on a GET route (as monitors and link checkers send it) was a 405."""
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path != "/metrics":  # its body counts the requests themselves
        assert head.headers["content-length"] == got.headers["content-length"]


def test_head_asks_for_the_key_that_get_asks_for(tiny_bundle: Path) -> None:
    keys = ApiKeys(read=("r" * 20,))
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle, keys=keys))) as c:
        assert c.head("/v1/model").status_code == 401
        assert c.head("/v1/model", headers={"X-API-Key": "r" * 20}).status_code == 200
        assert c.head("/v1/predict").status_code == 405  # POST only: HEAD is not a GET


@pytest.mark.parametrize(
    ("method", "path", "status", "fix"),
    [
        ("GET", "/v1/predict", 405, "'/v1/predict' does not take GET; send POST"),
        ("OPTIONS", "/v1/model", 405, "'/v1/model' does not take OPTIONS; send GET"),
        ("POST", "/v1/kg/search", 405, "'/v1/kg/search' does not take POST; send GET, HEAD"),
        ("POST", "/health", 405, "'/health' does not take POST; send GET, HEAD"),
        ("POST", "/v1/predict%00", 404, "nothing is served at '/v1/predict\\x00'"),
        ("GET", "/v2/model", 404, "nothing is served at '/v2/model'"),
    ],
)
def test_a_wrong_route_or_method_is_named_with_what_to_send(
    client: TestClient, method: str, path: str, status: int, fix: str
) -> None:
    """They were a bare "Method Not Allowed" / "Not Found", naming neither the problem nor
    the fix."""
    r = client.request(method, path)
    assert r.status_code == status and r.json()["error"]["status"] == status
    message = r.json()["error"]["message"]
    assert message.startswith(fix) and "/docs" in message


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/predict/"), ("GET", "/v1/model/")])
def test_a_trailing_slash_gets_a_404_naming_the_path_without_it_not_a_redirect(
    client: TestClient, method: str, path: str
) -> None:
    """It was a 307 with an empty body to ``http://{Host header}/v1/predict``: http:// behind a
    TLS proxy (the client's API key following it in the clear), any host a client names."""
    r = client.request(method, path, json={"texts": ["flu"]}, headers={"host": "elsewhere.example"})
    assert r.status_code == 404 and "location" not in r.headers
    message = r.json()["error"]["message"]
    assert message.endswith(f"send it without the trailing slash, to {path.rstrip('/')!r}")


def test_a_refused_cors_preflight_is_json_naming_what_the_server_allows(
    tiny_bundle: Path,
) -> None:
    """It was a text/plain 400 "Disallowed CORS origin"."""
    settings = ServeSettings(bundle=tiny_bundle, cors_origins=("http://app.example",))
    with TestClient(create_app(settings)) as c:
        asked = {"access-control-request-method": "POST"}
        r = c.options("/v1/predict", headers={**asked, "origin": "http://other.example"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "cors_refused"
        message = r.json()["error"]["message"]
        assert "refused (origin)" in message and "allows origins http://app.example" in message
        assert "--cors-origin" in message
        ok = c.options("/v1/predict", headers={**asked, "origin": "http://app.example"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://app.example"


def test_junk_methods_are_counted_under_one_metrics_label(client: TestClient) -> None:
    for method in ("FOO", "BAR", "GET"):
        assert client.request(method, "/v1/predict").status_code == 405
    metrics = client.get("/metrics").text
    assert 'method="other",route="/v1/predict",status="405"} 2.0' in metrics
    assert 'method="FOO"' not in metrics and 'method="BAR"' not in metrics


# ----------------------------------------------------------------- hot triples

ADMIN = "a" * 20
TURTLE = {"content-type": "text/turtle", "Authorization": f"Bearer {ADMIN}"}
PREFIXES = (
    "@prefix ex: <http://example.org/tiny/> .\n@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
)


@pytest.fixture
def admin_client(tiny_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    """A private copy of the bundle (hot triples write beside it), with an admin key."""
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(ADMIN,)))
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(
    "facts",
    [
        'ex:flu ex:hasSymptom "fever" .\n',
        'ex:flu ex:hasSymptom "3"^^xsd:integer .\n',
        'ex:measles ex:hasSymptom ex:fever .\nex:measles ex:hasSymptom "rash" .\n',
        'ex:flu a "Disease" .\n',
    ],
    ids=["string", "typed", "beside-a-good-triple", "type"],
)
def test_a_literal_where_a_relation_needs_an_entity_gets_422_and_adds_nothing(
    admin_client: TestClient, facts: str
) -> None:
    before = admin_client.get("/v1/model").json()["kg"]
    r = admin_client.post("/v1/kg/triples", content=PREFIXES + facts, headers=TURTLE)
    assert r.status_code == 422 and r.json()["error"]["code"] == "literal_object"
    message = r.json()["error"]["message"]
    predicate = "rdf-syntax-ns#type" if " a " in facts else "<http://example.org/tiny/hasSymptom>"
    assert predicate in message and "IRI" in message
    assert admin_client.get("/v1/model").json()["kg"] == before
    engine = admin_client.app.state.engine  # type: ignore[attr-defined]
    assert not list(engine.settings.hot_triples.glob("0*"))  # nothing persisted


def test_a_literal_of_a_predicate_that_is_no_relation_is_still_an_attribute(
    admin_client: TestClient,
) -> None:
    before = admin_client.get("/v1/model").json()["kg"]["attributes"]
    facts = PREFIXES + 'ex:flu ex:severity "4"^^xsd:integer ; ex:hasSymptom ex:headache .\n'
    r = admin_client.post("/v1/kg/triples", content=facts, headers=TURTLE)
    assert r.status_code == 200, r.text
    assert r.json()["added_triples"] == 1 and r.json()["kg"]["attributes"] == before + 1


def test_an_iri_where_a_label_needs_a_literal_gets_422_not_a_409_to_retrain(
    admin_client: TestClient,
) -> None:
    """``ex:flu rdfs:label ex:fever`` was a 409 unknown_relation telling to retrain the model
    with rdfs:label as a relation."""
    before = admin_client.get("/v1/model").json()["kg"]
    facts = PREFIXES + "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
    r = admin_client.post(
        "/v1/kg/triples", content=facts + "ex:flu rdfs:label ex:fever .\n", headers=TURTLE
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "iri_object"
    message = r.json()["error"]["message"]
    assert "rdf-schema#label" in message and "quoted string" in message
    assert admin_client.get("/v1/model").json()["kg"] == before


def test_a_gzip_body_of_triples_is_held_to_the_body_limit_once_unpacked(
    admin_client: TestClient,
) -> None:
    """2 KB of gzip that unpacks to 2 MB passed the 1 MB body limit: the KG parser gunzips a
    body by its magic number, so 1 MB sent could be 1 GB parsed."""
    before = admin_client.get("/v1/model").json()["kg"]
    facts = PREFIXES + "ex:measles ex:hasSymptom ex:fever .\n"
    bomb = gzip.compress((facts + "#" * 2_000_000 + "\n").encode())
    r = admin_client.post("/v1/kg/triples", content=bomb, headers=TURTLE)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert "unpacks to more than 1000000 bytes" in r.json()["error"]["message"]
    cut = gzip.compress(facts.encode())[:-8]
    broken = admin_client.post("/v1/kg/triples", content=cut, headers=TURTLE)
    assert broken.status_code == 422 and "gzip -t" in broken.json()["error"]["message"]
    assert admin_client.get("/v1/model").json()["kg"] == before
    engine = admin_client.app.state.engine  # type: ignore[attr-defined]
    assert not list(engine.settings.hot_triples.glob("0*"))  # nothing persisted
    small = admin_client.post(
        "/v1/kg/triples", content=gzip.compress(facts.encode()), headers=TURTLE
    )
    assert small.status_code == 200 and small.json()["added_triples"] == 1  # gzip still taken


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip"])
def test_a_body_with_a_content_encoding_gets_415_saying_to_send_it_uncompressed(
    admin_client: TestClient, coding: str
) -> None:
    """A gzip-encoded predict body was a 422 "the body is not valid JSON: it is not UTF-8
    (byte 0x8B at offset 1); send the JSON encoded as UTF-8", which blamed the wrong thing."""
    body = gzip.compress(b'{"texts": ["flu"]}')
    for path, headers in (("/v1/predict", JSON), ("/v1/kg/triples", TURTLE)):
        r = admin_client.post(path, content=body, headers={**headers, "content-encoding": coding})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        message = r.json()["error"]["message"]
        assert f"Content-Encoding: {coding}" in message and "uncompressed" in message
        assert r.headers["accept-encoding"] == "identity"
    plain = {**JSON, "content-encoding": "identity"}
    assert (
        admin_client.post("/v1/predict", json={"texts": ["flu"]}, headers=plain).status_code == 200
    )


def test_a_misspelt_format_parameter_is_refused_not_ignored(admin_client: TestClient) -> None:
    """``?fromat=tsv`` was ignored and the body parsed as the Content-Type's format."""
    rows = "flu\thasSymptom\tfever\n"
    r = admin_client.post("/v1/kg/triples?fromat=tsv", content=rows, headers=TURTLE)
    assert r.status_code == 422 and "'fromat'" in r.json()["error"]["message"]
    assert "takes only format" in r.json()["error"]["message"]


def test_the_spec_lists_the_415_that_predict_and_triples_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/predict", "/v1/kg/triples"):
        assert {"400", "408", "415"} <= set(paths[path]["post"]["responses"])
    assert "400" in paths["/v1/kg/search"]["get"]["responses"]  # a URL that is not UTF-8


def test_triples_already_in_the_kg_are_answered_and_add_no_hot_triples_file(
    admin_client: TestClient,
) -> None:
    """A retried insert, or facts the KG holds already, wrote one more file for every restart
    to replay."""
    facts = PREFIXES + "ex:measles ex:hasSymptom ex:fever , ex:fever .\n"
    first = admin_client.post("/v1/kg/triples", content=facts, headers=TURTLE)
    assert first.status_code == 200 and first.json()["saved_as"] == "000001.ttl"
    again = admin_client.post("/v1/kg/triples", content=facts, headers=TURTLE)
    known = PREFIXES + "ex:flu ex:hasSymptom ex:fever .\n"
    held = admin_client.post("/v1/kg/triples", content=known, headers=TURTLE)
    for r in (again, held):
        assert r.status_code == 200 and r.json()["saved_as"] == ""
        assert r.json()["added_triples"] == r.json()["new_entities"] == 0
        assert r.json()["kg"] == first.json()["kg"]
    engine = admin_client.app.state.engine  # type: ignore[attr-defined]
    assert [p.name for p in engine.settings.hot_triples.glob("0*")] == ["000001.ttl"]


# ----------------------------------------------------------------- limits


def test_a_request_that_leaves_top_k_paths_out_fits_a_server_limit_below_the_default(
    tiny_bundle: Path,
) -> None:
    """With --max-top-k-paths 2, a request that never sent top_k_paths was a 422 "top_k_paths
    is 3; the limit is 2"."""
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle, max_top_k_paths=2))) as c:
        r = c.post("/v1/predict", json={"texts": ["a bad case of influenza"], "explain": True})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"][0]["paths"]) <= 2
        asked = c.post("/v1/predict", json={"texts": ["influenza"], "top_k_paths": 3})
        assert asked.status_code == 422 and asked.json()["error"]["code"] == "too_many_paths"
