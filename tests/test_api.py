"""The HTTP service on a tiny trained bundle: routes, auth, limits, batching, hot triples."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.metrics import Metrics
from api.settings import ApiKeys, ServeSettings
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

EX = "http://example.org/tiny/"
READ, ADMIN = "r" * 20, "a" * 20
TEXTS = ["a bad case of influenza", "covid-19 and a cough", "my aunt has a fever"]
NEW_FACTS = (
    "@prefix ex: <http://example.org/tiny/> .\n"
    "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
    'ex:h5n1 rdfs:label "avian strain" ; ex:causedBy ex:influenza_virus ; ex:hasSymptom ex:fever .\n'
)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy: hot triples write beside the bundle."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="module")
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    """Reading is open (no keys); the read-only routes share one server."""
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle))) as c:
        yield c


def serve(bundle: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(ServeSettings(bundle=bundle, **settings)))


# ----------------------------------------------------------------- routes


def test_predict_returns_labels_probabilities_entities_and_real_paths(client: TestClient) -> None:
    r = client.post("/v1/predict", json={"texts": TEXTS[:2], "explain": True, "top_k_paths": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    model = client.get("/v1/model").json()
    assert body["model_version"] == model["version"] and len(body["model_version"]) == 12
    assert body["kg_fingerprint"] == model["kg"]["fingerprint"]
    assert set(body["timings_ms"]) == {"queue", "total"}
    first, second = body["predictions"]
    assert first["label"] in model["labels"]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    (flu,) = first["entities"]
    assert (flu["text"], flu["iri"], flu["label"]) == ("influenza", EX + "flu", "Influenza")
    assert TEXTS[0][flu["start"] : flu["end"]] == "influenza"
    assert {e["iri"] for e in second["entities"]} == {EX + "covid", EX + "cough"}
    hops = [h for p in first["paths"] + second["paths"] for h in p["hops"]]
    assert hops and 0 < len(first["paths"]) <= 2
    for hop in hops:  # every hop is a triple of the KG, found through the KG route
        subject = client.get(f"/v1/kg/entities/{hop['subject']['iri']}", params={"limit": 1000})
        edges = {(n["predicate"]["iri"], n["node"]["iri"]) for n in subject.json()["neighbors"]}
        assert (hop["predicate"]["iri"], hop["object"]["iri"]) in edges


def test_predict_without_explain_leaves_paths_out(client: TestClient) -> None:
    (p,) = client.post("/v1/predict", json={"texts": [TEXTS[0]]}).json()["predictions"]
    assert p["paths"] is None and p["graph_weight"] is not None


def test_model_route_describes_labels_metrics_versions_and_kg(client: TestClient) -> None:
    model = client.get("/v1/model").json()
    assert model["labels"] == ["flu", "viral"] and model["mode"] == "fused"
    assert "test:unseen" in model["metrics"] and "torch" in model["versions"]
    assert model["kg"]["triples"] > 0 and model["limits"]["max_texts"] == 64
    assert "keys" not in model["limits"] and "bundle" not in model["limits"]


def test_kg_entity_search_and_paths_routes(client: TestClient) -> None:
    e = client.get(f"/v1/kg/entities/{EX}flu").json()
    assert e["label"] == "Influenza" and e["degree"] == len(e["neighbors"]) > 0
    assert client.get("/v1/kg/entities/Influenza").json()["iri"] == EX + "flu"  # by label
    hits = client.get("/v1/kg/search", params={"q": "influenzza", "limit": 3}).json()["matches"]
    assert hits[0]["iri"] == EX + "flu" and len(hits) <= 3
    paths = client.get(
        "/v1/kg/paths", params={"source": EX + "flu", "target": "fever", "k": 2}
    ).json()
    assert paths["source"]["label"] == "Influenza" and 1 <= len(paths["paths"]) <= 2
    assert paths["paths"][0]["hops"][0]["subject"]["iri"] in {EX + "flu", paths["target"]["iri"]}
    assert "-->" in paths["paths"][0]["text"] or "<--" in paths["paths"][0]["text"]


def test_openapi_predictions_and_kg_paths_share_one_path_type(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    kg_path = schemas["PathsResponse"]["properties"]["paths"]["items"]
    explained = schemas["TextAnswer"]["properties"]["paths"]["anyOf"][0]["items"]
    assert kg_path == explained == {"$ref": "#/components/schemas/DescribedPath"}
    answer = schemas["TextAnswer"]["properties"]
    assert {"text", "label", "probabilities", "entities", "graph_weight", "paths", "error"} <= set(
        answer
    )


def test_health_ready_metrics_and_offline_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    client.post("/v1/predict", json={"texts": [TEXTS[0]]})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        'kgfuse_requests_total{method="POST",route="/v1/predict",status="200"}',
        "kgfuse_request_seconds_bucket",
        "kgfuse_batch_size_count",
        "kgfuse_queue_depth",
        "kgfuse_model_seconds_count",
    ):
        assert name in metrics.text
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/model", "/v1/kg/triples", "/v1/kg/search"} <= set(spec["paths"])


# ----------------------------------------------------------------- bad input: 4xx JSON


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "invalid_request",
        ),
        ({"json": {"texts": "one text"}}, 422, "invalid_request"),
        ({"json": {"texts": []}}, 422, "invalid_request"),
        ({"json": {"texts": ["x"], "explain": "maybe"}}, 422, "invalid_request"),
        ({"json": {"texts": ["x"], "surprise": 1}}, 422, "invalid_request"),
        ({"json": {"texts": ["x"], "top_k_paths": 0}}, 422, "invalid_request"),
        ({"json": {"texts": ["x"], "top_k_paths": 11}}, 422, "too_many_paths"),
        ({"json": {"texts": ["x"] * 65}}, 422, "too_many_texts"),
        ({"json": {"texts": ["x" * 5001]}}, 422, "text_too_long"),
        ({"json": {"texts": ["   "]}}, 422, "empty_text"),
    ],
)
def test_bad_predict_requests_get_a_json_4xx_naming_the_problem(
    client: TestClient, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = client.post("/v1/predict", **request_kwargs)
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


def test_unknown_iris_routes_and_methods_get_json_4xx(client: TestClient) -> None:
    r = client.get(f"/v1/kg/entities/{EX}nothing")
    assert r.status_code == 404 and "no entity" in r.json()["error"]["message"]
    r = client.get("/v1/kg/paths", params={"source": EX + "flu", "target": EX + "nowhere"})
    assert r.status_code == 404
    assert client.get("/v1/kg/search").status_code == 422  # q is required
    assert client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/v1/predict").json()["error"]["code"] == "method_not_allowed"


def test_body_size_limit_gives_413_declared_or_chunked(tiny_bundle: Path) -> None:
    with serve(tiny_bundle, max_body_bytes=200) as c:
        big = {"texts": ["influenza " * 30]}
        r = c.post("/v1/predict", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:
            yield b'{"texts": ["'
            for _ in range(40):
                yield b"influenza "
            yield b'"]}'

        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "200 bytes" in r.json()["error"]["message"]
        assert c.post("/v1/predict", json={"texts": ["flu"]}).status_code == 200


def slow_down(engine: Engine, started: threading.Event, release: threading.Event) -> None:
    """Make the engine's model calls block until ``release`` is set."""
    real = engine.predictor.predict

    def gated(texts: list[str], **kwargs: Any) -> list[dict[str, Any]]:
        started.set()
        release.wait(30)
        return real(texts, **kwargs)

    engine.predictor.predict = gated  # type: ignore[method-assign]


def test_a_request_waiting_past_the_timeout_gets_504(tiny_bundle: Path) -> None:
    settings = ServeSettings(bundle=tiny_bundle, request_timeout_s=0.3)
    engine = Engine.load(settings, Metrics())
    started, release = threading.Event(), threading.Event()
    slow_down(engine, started, release)
    with TestClient(create_app(settings, engine)) as c:
        r = c.post("/v1/predict", json={"texts": [TEXTS[0]]})
        release.set()
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        assert 'kgfuse_rejected_total{reason="timeout"} 1.0' in c.get("/metrics").text


# ----------------------------------------------------------------- auth


def test_api_keys_scopes_missing_and_wrong_keys(bundle: Path) -> None:
    with serve(bundle, keys=ApiKeys(read=(READ,), admin=(ADMIN,))) as c:
        body = {"texts": [TEXTS[0]]}
        missing = c.post("/v1/predict", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/predict", json=body, headers=bearer("x" * 20)).status_code == 401
        assert c.post("/v1/predict", json=body, headers=bearer(READ)).status_code == 200
        assert c.post("/v1/predict", json=body, headers={"X-API-Key": READ}).status_code == 200
        assert c.get("/v1/model", headers=bearer(ADMIN)).status_code == 200  # admin may read
        assert c.get("/v1/kg/search", params={"q": "flu"}).status_code == 401
        add = {"content": NEW_FACTS, "headers": {"content-type": "text/turtle"}}
        assert c.post("/v1/kg/triples", **add).status_code == 401
        add["headers"] |= bearer(READ)
        r = c.post("/v1/kg/triples", **add)
        assert r.status_code == 403 and "admin key" in r.json()["error"]["message"]
        add["headers"] |= bearer(ADMIN)
        assert c.post("/v1/kg/triples", **add).status_code == 200
        assert c.get("/health").status_code == 200  # probes need no key


def test_without_keys_reading_is_open_and_changing_the_kg_is_refused(bundle: Path) -> None:
    with serve(bundle) as c:
        assert c.get("/v1/model").status_code == 200
        r = c.post("/v1/kg/triples", content=NEW_FACTS, headers={"content-type": "text/turtle"})
        assert r.status_code == 403 and "KGFUSE_ADMIN_KEYS" in r.json()["error"]["message"]


# ----------------------------------------------------------------- batching and the queue


async def _concurrent(app: Any, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
            return list(await asyncio.gather(*(c.post("/v1/predict", json=b) for b in bodies)))


def test_concurrent_requests_are_batched_and_answer_like_sequential_ones(
    tiny_bundle: Path, client: TestClient
) -> None:
    bodies = [{"texts": [t], "explain": i % 2 == 0} for i, t in enumerate(TEXTS * 4)]
    settings = ServeSettings(bundle=tiny_bundle, max_wait_ms=200, max_batch=8)
    engine = Engine.load(settings, Metrics())
    batches: list[int] = []
    observe = engine.batcher.on_batch
    engine.batcher.on_batch = lambda size, s: (batches.append(size), observe and observe(size, s))
    together = asyncio.run(_concurrent(create_app(settings, engine), bodies))
    alone = [client.post("/v1/predict", json=b) for b in bodies]
    assert [r.status_code for r in together] == [200] * len(bodies)
    assert max(batches) > 1 and sum(batches) == len(bodies) and max(batches) <= 8
    for a, b in zip(together, alone, strict=True):
        (pa,), (pb,) = a.json()["predictions"], b.json()["predictions"]
        assert pa["label"] == pb["label"] and pa["entities"] == pb["entities"]
        for label, p in pa["probabilities"].items():
            assert p == pytest.approx(pb["probabilities"][label], abs=1e-4)
        assert [p["hops"] for p in pa["paths"] or []] == [p["hops"] for p in pb["paths"] or []]


def test_a_full_queue_answers_503_with_retry_after(tiny_bundle: Path) -> None:
    settings = ServeSettings(bundle=tiny_bundle, queue_size=1, max_wait_ms=0)
    engine = Engine.load(settings, Metrics())
    started, release = threading.Event(), threading.Event()
    slow_down(engine, started, release)
    app = create_app(settings, engine)

    async def scenario() -> list[int | httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
                body = {"texts": [TEXTS[0]]}
                running = asyncio.create_task(c.post("/v1/predict", json=body))
                await asyncio.to_thread(started.wait, 10)  # the first is on the model thread
                queued = asyncio.create_task(c.post("/v1/predict", json=body))
                while engine.batcher.depth < 1:  # the second waits in the queue
                    await asyncio.sleep(0.005)
                refused = await c.post("/v1/predict", json=body)
                release.set()
                return [(await running).status_code, (await queued).status_code, refused]

    first, second, refused = asyncio.run(scenario())
    assert (first, second) == (200, 200)
    assert isinstance(refused, httpx.Response) and refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"


def test_shutdown_lets_queued_requests_finish(tiny_bundle: Path) -> None:
    settings = ServeSettings(bundle=tiny_bundle, max_wait_ms=0)
    engine = Engine.load(settings, Metrics())
    started, release = threading.Event(), threading.Event()
    slow_down(engine, started, release)
    app = create_app(settings, engine)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            post = [c.post("/v1/predict", json={"texts": [t]}) for t in TEXTS]
            tasks = [asyncio.create_task(post[0])]
            await asyncio.to_thread(started.wait, 10)  # the first is on the model thread
            tasks += [asyncio.create_task(p) for p in post[1:]]
            while engine.batcher.depth < len(post) - 1:  # the others wait in the queue
                await asyncio.sleep(0.005)
            closing = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await asyncio.sleep(0.05)
            late = await c.post("/v1/predict", json={"texts": [TEXTS[0]]})
            release.set()
            await closing
            return [*(t.status_code for t in await asyncio.gather(*tasks)), late.status_code]

    *served, late = asyncio.run(scenario())
    assert served == [200, 200, 200] and late == 503


# ----------------------------------------------------------------- hot triples


def test_hot_triples_change_a_prediction_persist_and_survive_a_restart(bundle: Path) -> None:
    text = {"texts": ["my aunt caught the avian strain"], "explain": True}
    keys = ApiKeys(admin=(ADMIN,))
    with serve(bundle, keys=keys) as c:
        (before,) = c.post("/v1/predict", json=text, headers=bearer(ADMIN)).json()["predictions"]
        assert before["entities"] == []
        r = c.post(
            "/v1/kg/triples",
            content=NEW_FACTS,
            headers={"content-type": "text/turtle", **bearer(ADMIN)},
        )
        assert r.status_code == 200, r.text
        assert r.json()["added_triples"] == 2 and r.json()["new_entities"] == 1
        (after,) = c.post("/v1/predict", json=text, headers=bearer(ADMIN)).json()["predictions"]
        assert [e["iri"] for e in after["entities"]] == [EX + "h5n1"]
        assert after["probabilities"] != before["probabilities"] and after["paths"]
        assert any(h["subject"]["iri"] == EX + "h5n1" for p in after["paths"] for h in p["hops"])
    # the triples as sent, and the features of the entity they brought (a restart reuses them)
    assert sorted(p.name for p in (bundle / "hot-triples").iterdir()) == ["000001.ttl", "features"]
    assert [p.name for p in (bundle / "hot-triples" / "features").iterdir()] == [
        "000001.safetensors"
    ]
    with serve(bundle, keys=keys) as c:  # a restart replays the added triples
        (again,) = c.post("/v1/predict", json=text, headers=bearer(ADMIN)).json()["predictions"]
        assert again["probabilities"] == after["probabilities"]
        assert c.get("/v1/model", headers=bearer(ADMIN)).json()["kg"]["hot_triple_files"] == 1


def test_bad_triples_change_nothing(bundle: Path) -> None:
    admin = bearer(ADMIN)
    with serve(bundle, keys=ApiKeys(admin=(ADMIN,))) as c:
        fingerprint = c.get("/v1/model", headers=admin).json()["kg"]["fingerprint"]
        broken = NEW_FACTS.replace(" .\n", "\n")  # the statement never ends
        r = c.post(
            "/v1/kg/triples", content=broken, headers={"content-type": "text/turtle", **admin}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_triples"
        r = c.post(
            "/v1/kg/triples", content="a b c", headers={"content-type": "image/png", **admin}
        )
        assert r.status_code == 415 and "text/turtle" in r.json()["error"]["message"]
        r = c.post("/v1/kg/triples?format=dot", content="a b c", headers=admin)
        assert r.status_code == 422 and "unknown format" in r.json()["error"]["message"]
        r = c.post(
            "/v1/kg/triples?format=tsv",
            content=f"{EX}h5n1\t{EX}causedBy\n",
            headers=admin,
        )
        assert r.status_code == 422
        assert c.get("/v1/model", headers=admin).json()["kg"]["fingerprint"] == fingerprint
    assert not (bundle / "hot-triples").exists()


# ----------------------------------------------------------------- privacy, CORS, CLI


def test_texts_stay_out_of_the_log_unless_asked(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "patient Jane Doe has influenza"
    with caplog.at_level(logging.INFO), serve(tiny_bundle) as c:
        c.post("/v1/predict", json={"texts": [secret]})
    assert secret not in caplog.text
    with caplog.at_level(logging.INFO), serve(tiny_bundle, log_texts=True) as c:
        c.post("/v1/predict", json={"texts": [secret]})
    assert secret in caplog.text


def test_cors_is_off_unless_origins_are_given(tiny_bundle: Path) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
    }
    with serve(tiny_bundle) as c:
        r = c.options("/v1/predict", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with serve(tiny_bundle, cors_origins=("https://app.example.com",)) as c:
        r = c.options("/v1/predict", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example.com"


def test_serve_cli_refuses_a_missing_bundle_and_a_bad_key_file(tmp_path: Path) -> None:
    r = run_cli("serve", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "no model bundle" in r.stderr and "Traceback" not in r.stderr
    keys = tmp_path / "keys"
    keys.write_text("root hunter2hunter2hunter2\n")
    r = run_cli("serve", str(tmp_path / "nowhere"), "--keys-file", str(keys))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{keys}:1: expected 'read KEY' or 'admin KEY'" in r.stderr  # before the bundle


def test_serve_cli_starts_answers_and_stops_gracefully(tiny_bundle: Path, tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from api.cli import main; main()", "serve", str(tiny_bundle)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.post(url + "/v1/predict", json={"texts": [TEXTS[0]]}, timeout=30)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] in {"flu", "viral"}
        assert "<textarea" in httpx.get(url + "/").text
        assert httpx.get(url + "/v1/kg/search", params={"q": "privatejane"}).status_code == 200
        # a URL too long for the HTTP parser is refused by the server itself: in JSON too
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/kg/search?q=" + "a" * 70_000)
        long = conn.getresponse()
        assert long.status == 400 and long.getheader("content-type") == "application/json"
        assert json.loads(long.read())["error"]["code"] == "bad_request"
        conn.close()
        # a WebSocket upgrade (the service has no WebSocket route) is answered as HTTP, in JSON;
        # it was a text/plain 403 with no body
        upgrade = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        for path, status in (("/health", 200), ("/v1/predict", 405)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers=upgrade)
            answer = conn.getresponse()
            assert (
                answer.status == status and answer.getheader("content-type") == "application/json"
            )
            conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    # uvicorn finishes the shutdown, then re-raises the signal it caught (exit -15 = SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out and "Traceback" not in out
    assert '"GET /v1/kg/search HTTP/1.1" 200' in out and "privatejane" not in out  # no user text
    assert os.path.isdir(tiny_bundle)
