"""`kgfuse serve --anonymize`: texts are redacted as they arrive, so the model, the answer, the log
(even with --log-texts) and the files beside the bundle never hold the raw personal data, while
the KG entities of the text are still linked."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.metrics import Metrics
from api.settings import ServeSettings
from tests.conftest import run_cli_in_process

pytestmark = pytest.mark.integration

SECRETS = ["Jane Doe", "jane.doe@example.com", "+44 20 7946 0958", "DE89 3704 0044 0532 0130 00"]
TEXT = (
    "Dr. Jane Doe has influenza and a cough; mail jane.doe@example.com, call +44 20 7946 0958, "
    "refund to DE89 3704 0044 0532 0130 00"
)


def test_anonymize_api_logs_answers_and_files_hold_no_raw_personal_data(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    settings = ServeSettings(bundle=bundle, anonymize=True, log_texts=True)
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings)) as client:
        response = client.post("/v1/predict", json={"texts": [TEXT], "explain": True})
    assert response.status_code == 200
    body = response.json()
    answer = body["predictions"][0]
    assert answer["text"] == (
        "Dr. [PERSON] has influenza and a cough; mail [EMAIL], call [PHONE], refund to [IBAN]"
    )
    assert body["anonymized"] == [{"redactions": {"PERSON": 1, "EMAIL": 1, "PHONE": 1, "IBAN": 1}}]
    assert "http://example.org/tiny/flu" in {e["iri"] for e in answer["entities"]}
    assert "[EMAIL]" in caplog.text  # --log-texts logs the redacted text
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    for secret in SECRETS:
        assert secret not in caplog.text and secret not in response.text
        assert not any(secret.encode() in data for data in written)


def test_anonymize_api_is_off_by_default(tiny_bundle: Path) -> None:
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle))) as client:
        body = client.post("/v1/predict", json={"texts": [TEXT]}).json()
    assert body["anonymized"] is None and body["predictions"][0]["text"] == TEXT


def test_anonymize_cli_with_a_bundle_keeps_its_linked_entities(
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, out = tmp_path / "data.csv", tmp_path / "out.csv"
    data.write_text(f'text,label\n"{TEXT}",flu\ncovid-19 and a cough,viral\n')  # TEXT has commas
    args = ["anonymize", str(data), "-o", str(out), "--bundle", str(tiny_bundle)]
    assert run_cli_in_process(monkeypatch, *args) == 0
    assert "linked KG entities unchanged in 2 of 2 texts" in " ".join(
        capsys.readouterr().out.split()
    )
    assert "Dr. [PERSON] has influenza" in out.read_text()


def test_anonymize_api_a_text_that_cannot_be_redacted_fails_alone_and_stays_out_of_the_log(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redaction links each text first; a text that breaks that step got the whole request a
    500, and the log the raw text that the error quoted (here the e-mail address)."""
    settings = ServeSettings(bundle=tiny_bundle, anonymize=True)
    engine = Engine.load(settings, Metrics())
    resources = engine.predictor.resources
    real = resources.nlp

    class Breaking:  # the linker pipeline, failing on one text as an unforeseen bug would
        def pipe(self, texts: list[str], **kwargs: Any) -> Any:
            for text in texts:
                if "POISON" in text:
                    raise RuntimeError(f"the linker broke on {text!r}")
            return real.pipe(texts, **kwargs)

    resources.nlp = Breaking()  # type: ignore[assignment]
    texts = ["a bad case of influenza", "POISON: write to jane.doe@example.com"]
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings, engine)) as client:
        response = client.post("/v1/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    good, bad = response.json()["predictions"]
    assert good["label"] is not None and good.get("error") is None
    assert bad["label"] is None and bad["error"]["code"] == "internal"
    assert bad["text"] == ""  # never echoed unredacted
    assert "anonymization failed for one text: RuntimeError" in caplog.text
    assert "jane.doe@example.com" not in caplog.text
    assert "jane.doe@example.com" not in response.text


def test_anonymize_api_requests_waiting_for_redaction_count_against_the_queue(
    tiny_bundle: Path,
) -> None:
    """Redaction waits for the model thread, but outside the bounded queue: with the model busy,
    every request waited there, however many, where the queue answers 503 at once."""
    settings = ServeSettings(bundle=tiny_bundle, anonymize=True, queue_size=1)
    engine = Engine.load(settings, Metrics())
    app = create_app(settings, engine)
    release = threading.Event()

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            busy = asyncio.ensure_future(engine.batcher.call(release.wait))  # the model is busy
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kgfuse") as c:
                body = {"texts": ["Jane Doe has influenza"]}
                first = asyncio.ensure_future(c.post("/v1/predict", json=body))
                try:
                    while engine.batcher.executor._work_queue.qsize() < 1:  # first waits for it
                        await asyncio.sleep(0.01)
                    # the old code kept it waiting while the model was busy: here, for ever
                    second = await asyncio.wait_for(c.post("/v1/predict", json=body), 60)
                finally:
                    release.set()
                await busy
                return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200, first.text
    assert first.json()["predictions"][0]["text"] == "[PERSON] has influenza"
    assert second.status_code == 503 and second.json()["error"]["code"] == "overloaded"
    assert second.headers["retry-after"] == "1"
