"""The service under faults and hostile input: hot triples that would change the model's relation
ids, texts that break a batch, large inserts, and the smaller defects found by probing it."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.metrics import Metrics
from api.settings import ApiKeys, ServeSettings
from fusion import features as features_module
from fusion.encoder import TextEncoder
from fusion.features import FeatureCache
from fusion.predict import Predictor
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

EX = "http://example.org/tiny/"
ADMIN = "a" * 20
TURTLE = {"content-type": "text/turtle", "Authorization": f"Bearer {ADMIN}"}
PREFIXES = (
    "@prefix ex: <http://example.org/tiny/> .\n"
    "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
)
# A new disease and symptom, far from everything the test texts link (existing predicates).
FAR_FACTS = PREFIXES + (
    'ex:measles rdfs:label "measles" ; ex:hasSymptom ex:rash .\n'
    'ex:rash rdfs:label "skin rash" ; rdfs:comment "Red spots on the skin." .\n'
)
UNTOUCHED = ["a bad case of influenza", "covid-19 and a cough", "nothing in the graph here"]


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy: hot triples write beside the bundle."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def serve(bundle: Path, **settings: Any) -> TestClient:
    settings.setdefault("keys", ApiKeys(admin=(ADMIN,)))
    return TestClient(create_app(ServeSettings(bundle=bundle, **settings)))


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


@torch.no_grad()
def logits(predictor: Predictor, texts: list[str]) -> torch.Tensor:
    model = predictor.model
    prepared = predictor.prepare(texts)
    tokens, graph, counts = predictor.resources.inputs(model, prepared)
    text = model.text_vector(tokens, len(prepared))
    return model.forward_parts(tokens, graph, text_vector=text, counts=counts)["logits"]


# ----------------------------------------------------------------- 1. relation ids never change


def test_untouched_texts_keep_bit_identical_logits_after_hot_triples_and_a_restart(
    bundle: Path,
) -> None:
    with serve(bundle) as c:
        before = logits(engine_of(c).predictor, UNTOUCHED)
        far_new_predicate = PREFIXES + "ex:measles ex:treatedBy ex:rest .\n"
        c.post("/v1/kg/triples", content=far_new_predicate, headers=TURTLE)
        assert torch.equal(logits(engine_of(c).predictor, UNTOUCHED), before)
        r = c.post("/v1/kg/triples", content=FAR_FACTS, headers=TURTLE)
        assert r.status_code == 200, r.text
        assert r.json()["new_entities"] == 2
        assert torch.equal(logits(engine_of(c).predictor, UNTOUCHED), before)
    with serve(bundle) as c:  # the restart replays the hot triples
        assert engine_of(c).graph.has_entity(EX + "measles")
        assert torch.equal(logits(engine_of(c).predictor, UNTOUCHED), before)


@pytest.mark.parametrize("predicates", [["ex:treatedBy"], ["ex:treatedBy", "ex:aPrevents"]])
def test_hot_triples_with_a_new_predicate_get_409_naming_it_and_change_nothing(
    bundle: Path, predicates: list[str]
) -> None:
    facts = PREFIXES + "".join(f"ex:flu {p} ex:rest .\n" for p in predicates)
    with serve(bundle) as c:
        before = logits(engine_of(c).predictor, UNTOUCHED)
        r = c.post("/v1/kg/triples", content=facts, headers=TURTLE)
        assert r.status_code == 409 and r.json()["error"]["code"] == "unknown_relation"
        message = r.json()["error"]["message"]
        for p in predicates:
            assert p.replace("ex:", EX) in message
        assert "retrain" in message
        answer = c.post("/v1/predict", json={"texts": UNTOUCHED, "explain": True})
        assert answer.status_code == 200
        assert torch.equal(logits(engine_of(c).predictor, UNTOUCHED), before)
    assert not list((bundle / "hot-triples").glob("0*"))


def test_hot_triples_the_server_cannot_save_get_503_naming_the_folder_and_change_nothing(
    bundle: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with serve(bundle, hot_triples_dir=blocker / "hot") as c:
        before = logits(engine_of(c).predictor, UNTOUCHED)
        r = c.post("/v1/kg/triples", content=FAR_FACTS, headers=TURTLE)
        assert r.status_code == 503 and r.json()["error"]["code"] == "hot_triples_unwritable"
        message = r.json()["error"]["message"]
        assert f"{blocker} is a file" in message and "--hot-triples-dir" in message
        assert c.post("/v1/predict", json={"texts": UNTOUCHED}).status_code == 200
        assert torch.equal(logits(engine_of(c).predictor, UNTOUCHED), before)
        assert c.get("/v1/model", headers=TURTLE).json()["kg"]["hot_triple_files"] == 0
    assert blocker.read_text() == ""


@pytest.mark.parametrize("failing", ["triples", "features"])
def test_hot_triples_on_a_full_disk_get_503_and_leave_no_file_behind(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A disk that fills up while an insert is saved: writing the triples was a 500 that left
    its partial file; writing their features, after the triples, left the triples saved for an
    insert answered as failed, to be served after the next restart."""
    hot = bundle / "hot-triples"

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "triples":  # the body's file is written, and its fsync meets the full disk
        monkeypatch.setattr(FeatureCache, "save", lambda *args: None)
        monkeypatch.setattr(features_module.os, "fsync", full)
    else:
        monkeypatch.setattr(FeatureCache, "save", full)
    with serve(bundle) as c:
        fingerprint = engine_of(c).graph.fingerprint
        r = c.post("/v1/kg/triples", content=FAR_FACTS, headers=TURTLE)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "hot_triples_unwritable"
        assert "No space left on device; free space" in r.json()["error"]["message"]
        assert engine_of(c).graph.fingerprint == fingerprint
    assert not [p for p in hot.rglob("*") if p.is_file()]  # nothing saved, nothing partial
    with serve(bundle) as c:  # restarted, the server serves the graph it answered with
        assert engine_of(c).graph.fingerprint == fingerprint


# ----------------------------------------------------------------- 2. one bad text, one failure


@pytest.mark.parametrize(
    ("text", "problem"),
    [("fever \\ud800 cough", "lone surrogate"), ("\\u200b\\u00a0", "empty"), ("", "empty")],
)
def test_an_invalid_or_empty_text_gets_422_naming_its_index(
    tiny_bundle: Path, text: str, problem: str
) -> None:
    """Alone in its request (beside good texts it gets its own error: test_api_bad_requests)."""
    body = '{"texts": ["' + text + '"]}'
    with serve(tiny_bundle) as c:
        r = c.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "texts[0]" in r.json()["error"]["message"]
    assert problem in r.json()["error"]["message"]


def poison(engine: Engine, marker: str) -> None:
    """Make any model call that holds a text with ``marker`` fail, as an unforeseen bug would."""
    real = engine.predictor.predict

    def failing(texts: list[str], **kwargs: Any) -> list[dict[str, Any]]:
        if any(marker in t for t in texts):
            raise RuntimeError("a bug met by one text")
        return real(texts, **kwargs)

    engine.predictor.predict = failing  # type: ignore[method-assign]


def test_a_text_that_fails_inside_a_batch_fails_only_itself(tiny_bundle: Path) -> None:
    settings = ServeSettings(bundle=tiny_bundle, max_wait_ms=300, max_batch=16)
    engine = Engine.load(settings, Metrics())
    poison(engine, "POISON")
    batches: list[int] = []
    engine.batcher.on_batch = lambda size, s: batches.append(size)
    app = create_app(settings, engine)
    bodies = [
        '{"texts": ["a bad case of influenza"]}',
        '{"texts": ["covid-19 and a cough", "POISON fever"]}',
        '{"texts": ["my aunt has a fever \\udc80"]}',  # refused at the schema: 422
        '{"texts": ["POISON"]}',
        '{"texts": ["nothing in the graph here", "influenza"]}',
    ]

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            # a 500 is answered, then re-raised for the server's log: answered is what counts
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
                headers = {"content-type": "application/json"}
                posts = [c.post("/v1/predict", content=b, headers=headers) for b in bodies]
                return list(await asyncio.gather(*posts))

    alone, mixed, invalid, poisoned, pair = asyncio.run(scenario())
    assert max(batches) > 1  # the requests did share model calls
    assert alone.status_code == 200 and pair.status_code == 200
    assert [p["label"] is not None for p in pair.json()["predictions"]] == [True, True]
    assert mixed.status_code == 200
    good, bad = mixed.json()["predictions"]
    assert good["label"] in {"flu", "viral"} and good.get("error") is None
    assert bad["label"] is None and bad["error"]["status"] == 500
    assert bad["text"] == "POISON fever"
    assert invalid.status_code == 422 and "texts[0]" in invalid.json()["error"]["message"]
    assert poisoned.status_code == 500 and poisoned.json()["error"]["code"] == "internal"


def test_a_text_that_fails_alone_stays_out_of_the_log_unless_texts_may_be_logged(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure is logged for the operator; its message quoted the text (as a parser's or a
    tokenizer's error may), and went to the log with --log-texts off."""
    secret = "POISON patient Jane Roe"
    for log_texts in (False, True):
        settings = ServeSettings(bundle=tiny_bundle, log_texts=log_texts)
        engine = Engine.load(settings, Metrics())
        real = engine.predictor.predict

        def failing(texts: list[str], real: Any = real, **kwargs: Any) -> Any:
            if secret in texts:
                raise RuntimeError(f"cannot read {texts!r}")
            return real(texts, **kwargs)

        engine.predictor.predict = failing  # type: ignore[method-assign]
        caplog.clear()
        with caplog.at_level(logging.INFO), TestClient(create_app(settings, engine)) as c:
            r = c.post("/v1/predict", json={"texts": ["influenza", secret]})
        assert r.status_code == 200 and r.json()["predictions"][1]["error"]["status"] == 500
        assert "prediction failed for one text" in caplog.text
        assert "RuntimeError" in caplog.text and "failing" in caplog.text  # type and frames
        assert (secret in caplog.text) == log_texts


# ----------------------------------------------------------------- 4. large inserts


def test_hot_triples_adding_more_entities_than_the_limit_get_413_naming_the_setting(
    bundle: Path,
) -> None:
    with serve(bundle, max_new_entities=1) as c:
        r = c.post("/v1/kg/triples", content=FAR_FACTS, headers=TURTLE)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_entities"
        message = r.json()["error"]["message"]
        assert "2 new entities" in message and "--max-new-entities" in message
    assert not list((bundle / "hot-triples").glob("0*"))


@pytest.fixture
def slow_embedding(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Entity embedding takes 0.1 s a text (the returned event is set on its first call)."""
    started = threading.Event()
    real = TextEncoder.embed

    def slow(self: TextEncoder, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        started.set()
        time.sleep(0.1 * len(texts))
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(TextEncoder, "embed", slow)
    return started


def test_predictions_are_answered_while_hot_triples_are_being_added(
    bundle: Path, slow_embedding: threading.Event
) -> None:
    """40 new entities take 4 s to embed; predictions with a 1 s timeout are answered
    meanwhile (they waited for the whole embedding, and timed out, when it ran in one go)."""
    facts = PREFIXES + "".join(
        f'ex:new{i} rdfs:label "new {i}" ; ex:hasSymptom ex:fever .\n' for i in range(40)
    )
    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(ADMIN,)), request_timeout_s=1)
    app = create_app(settings)

    async def scenario() -> tuple[list[int], bool, int, int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
                old = (await c.get("/v1/model")).json()["kg"]["entities"]
                insert = asyncio.create_task(
                    c.post("/v1/kg/triples", content=facts, headers=TURTLE)
                )
                assert await asyncio.to_thread(slow_embedding.wait, 30)  # it is embedding
                during = [
                    (await c.post("/v1/predict", json={"texts": [t]})).status_code
                    for t in UNTOUCHED
                ]
                overlapped = not insert.done()
                added = await insert
                new = (await c.get("/v1/model")).json()["kg"]["entities"]
                return during, overlapped, added.status_code, new - old

    during, overlapped, status, grown = asyncio.run(scenario())
    assert overlapped and during == [200, 200, 200]  # served from the old graph meanwhile
    assert status == 200 and grown == 40  # then swapped in


def test_features_of_added_entities_are_cached_by_content_across_restarts(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[str] = []
    real = TextEncoder.embed

    def counting(self: TextEncoder, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        embedded.extend(texts)
        return real(self, texts, *args, **kwargs)

    def added_vectors(c: TestClient) -> torch.Tensor:
        resources = engine_of(c).predictor.resources
        graph = resources.graph
        added = [graph.entity_id(EX + "measles"), graph.entity_id(EX + "rash")]
        return resources.features.rows(added)

    monkeypatch.setattr(TextEncoder, "embed", counting)
    with serve(bundle) as c:
        assert c.post("/v1/kg/triples", content=FAR_FACTS, headers=TURTLE).status_code == 200
        assert sorted(embedded) == ["measles", "skin rash. Red spots on the skin."]
        vectors = added_vectors(c)
    embedded.clear()
    with serve(bundle) as c:
        assert torch.equal(added_vectors(c), vectors)
    assert embedded == []  # the restart re-embedded nothing


# ----------------------------------------------------------------- 7. smaller defects


def test_bad_hot_triples_name_the_request_body_not_a_server_path(bundle: Path) -> None:
    broken = FAR_FACTS.replace(" .\n", "\n")  # the statement never ends
    with serve(bundle) as c:
        r = c.post("/v1/kg/triples", content=broken, headers=TURTLE)
    message = r.json()["error"]["message"]
    assert r.status_code == 422 and message.startswith("request body:")
    assert "kgfuse-triples" not in message and "/tmp" not in message and "upload" not in message


def test_serve_exits_with_one_line_naming_a_corrupt_hot_triples_file(bundle: Path) -> None:
    folder = bundle / "hot-triples"
    folder.mkdir()
    (folder / "000001.ttl").write_text(FAR_FACTS)
    (folder / "000002.ttl").write_text("ex:flu ex:hasSymptom")  # cut short
    r = run_cli("serve", str(bundle), "--port", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert str(folder / "000002.ttl") in line


@pytest.mark.parametrize(
    ("text", "problem"), [("\udcff\udcfe influenza", "not valid UTF-8"), ("", "empty")]
)
def test_cli_predict_refuses_an_invalid_or_empty_text_in_one_line(
    tiny_bundle: Path, text: str, problem: str
) -> None:
    r = run_cli("predict", str(tiny_bundle), "a bad case of influenza", text)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "text 2" in line and problem in line


def test_cli_predict_numbers_a_bad_text_over_the_whole_input_file(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.txt"
    lines = ["a bad case of influenza"] * 70
    lines[65] = "\u200b"  # invisible only: line 66, in the second chunk of 64
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run_cli("predict", str(tiny_bundle), "-i", str(texts))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "text 66" in r.stderr


def test_feature_cache_files_are_keyed_by_text_and_encoder_and_skipped_when_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FeatureCache("encoder-a")
    cache["fever"] = np.ones(4, dtype=np.float32)
    saved = cache.save(tmp_path, "000001")
    assert saved == tmp_path / "000001.safetensors" and cache.save(tmp_path, "000002") is None
    again = FeatureCache.load(tmp_path, "encoder-a")
    assert "fever" in again and "cough" not in again
    assert np.array_equal(again["fever"], np.ones(4, dtype=np.float32))
    assert "fever" not in FeatureCache.load(tmp_path, "encoder-b")  # another encoder's vectors
    (tmp_path / "000002.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    assert "fever" in FeatureCache.load(tmp_path, "encoder-a")
    assert "skipping the feature cache file" in caplog.text and "000002" in caplog.text
