"""The web page in a real headless Chromium, against a real uvicorn server on a free port.

Debian's Chromium (/usr/bin/chromium) is driven through Playwright; a missing browser is a
failure that says how to install it, never a skip.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api.app import create_app
from api.settings import ApiKeys, ServeSettings
from bench.screenshot import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration

ADMIN = "a" * 20
READ = "r" * 20
TEXT = "a bad case of influenza and a cough"
SCRIPT_LABEL = "<script>window.__xss=1</script>"
IMG_LABEL = '<img src=x onerror="window.__xss=2">'
IMG_TURTLE = IMG_LABEL.replace('"', '\\"')
EVIL_TTL = f"""@prefix ex: <http://example.org/tiny/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:evil rdfs:label "{SCRIPT_LABEL}" ; ex:causedBy ex:influenza_virus .
ex:evil2 rdfs:label "{IMG_TURTLE}" ; ex:causedBy ex:influenza_virus .
"""

expect.set_options(timeout=20_000)


MISSING = (
    f"{CHROMIUM} is missing: the web page tests need Debian's Chromium; "
    "run `apt-get install chromium`"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser | None]:
    """One Chromium for the module; None when it is missing (`open_page` then fails the test)."""
    if not CHROMIUM.exists():
        yield None
        return
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the tiny bundle: hot triples are written beside it."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started serving"
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def open_page(browser: Browser | None, url: str) -> Iterator[Page]:
    """A fresh page on ``url``; any uncaught JavaScript error fails the test."""
    if browser is None:
        pytest.fail(MISSING)  # a failure, not a skip: CI must have the browser
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    try:
        yield page
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def test_predict_shows_label_entities_probabilities_and_path_graph(
    browser: Browser | None, bundle: Path, tmp_path: Path
) -> None:
    with serve(create_app(ServeSettings(bundle=bundle))) as url, open_page(browser, url) as page:
        expect(page.locator("h1")).to_have_text("kgfuse")
        expect(page.locator("#model-info")).to_contain_text("flu, viral")
        expect(page.locator("#explain")).to_be_checked()
        expect(page.locator("#key")).to_be_hidden()

        page.fill("#text", TEXT)
        page.click("#predict")

        expect(page.locator("#label")).to_have_text(re.compile(r"^(flu|viral)$"))
        expect(page.locator("#result mark", has_text=re.compile(r"^influenza$"))).to_have_count(1)
        mark = page.locator("#result mark", has_text="influenza")
        assert "http://example.org/tiny/flu" in (mark.get_attribute("title") or "")
        assert "Influenza" in (mark.get_attribute("title") or "")
        expect(page.locator(".bars .bar")).to_have_count(2)
        expect(page.locator(".path").first).to_be_visible()
        graph_text = page.locator("#paths-graph svg text")
        expect(graph_text.first).to_be_attached()
        assert graph_text.count() >= 1
        assert page.locator("#paths-graph svg .edge-line").count() >= 1
        expect(page.locator("#error")).to_be_hidden()

        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0


def test_ctrl_enter_submits(browser: Browser | None, bundle: Path) -> None:
    with serve(create_app(ServeSettings(bundle=bundle))) as url, open_page(browser, url) as page:
        page.fill("#text", TEXT)
        page.press("#text", "Control+Enter")
        expect(page.locator("#label")).to_have_text(re.compile(r"^(flu|viral)$"))


def test_kg_labels_are_shown_as_text_never_run_as_html(
    browser: Browser | None, bundle: Path
) -> None:
    keys = ApiKeys(read=(READ,), admin=(ADMIN,))  # a read key: reading is never open
    app = create_app(ServeSettings(bundle=bundle, keys=keys))
    text = f"influenza {SCRIPT_LABEL} and {IMG_LABEL} with a cough"
    with serve(app) as url:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        added = httpx.post(
            f"{url}/v1/kg/triples",
            content=EVIL_TTL,
            headers={**auth, "Content-Type": "text/turtle"},
            timeout=30,
        )
        assert added.status_code == 200, added.text
        assert added.json()["new_entities"] == 2
        direct = httpx.post(
            f"{url}/v1/predict", json={"texts": [text], "explain": True}, headers=auth, timeout=30
        )
        assert direct.status_code == 200, direct.text
        linked = {e["iri"]: e["text"] for e in direct.json()["predictions"][0]["entities"]}
        assert linked["http://example.org/tiny/evil"] == SCRIPT_LABEL
        assert linked["http://example.org/tiny/evil2"] == IMG_LABEL

        with open_page(browser, url) as page:
            page.fill("#text", text)
            page.click("#predict")
            expect(page.locator("#key")).to_be_visible()  # the 401 asks for the key
            page.fill("#key", READ)
            page.click("#predict")
            expect(page.locator("#label")).to_have_text(re.compile(r"^(flu|viral)$"))
            expect(page.locator(".path").first).to_be_visible()
            page.wait_for_timeout(300)  # an injected <img onerror> would have fired by now

            assert page.evaluate("() => typeof window.__xss") == "undefined"
            assert page.locator("#result script").count() == 0
            assert page.locator("#result img").count() == 0
            assert page.locator("body script").count() == 0
            marks = page.locator("#result mark").all_text_contents()
            assert SCRIPT_LABEL in marks and IMG_LABEL in marks
            shown = page.locator("#result").text_content() or ""
            assert "<script>" in shown and SCRIPT_LABEL in shown and IMG_LABEL in shown
            expect(page.locator("#highlighted")).to_contain_text(SCRIPT_LABEL)
            # the evil labels also reach the path graph and list when their paths are shown
            svg_text = " ".join(page.locator("#paths-graph svg text").all_text_contents())
            listed = " ".join(page.locator(".path").all_text_contents())
            for label in (SCRIPT_LABEL, IMG_LABEL):
                if label in listed:
                    assert label in svg_text


def test_a_401_reveals_the_key_field_and_the_key_is_kept(
    browser: Browser | None, bundle: Path
) -> None:
    app = create_app(ServeSettings(bundle=bundle, keys=ApiKeys(read=(READ,))))
    with serve(app) as url, open_page(browser, url) as page:
        page.fill("#text", TEXT)
        page.click("#predict")
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("#error")).to_contain_text("API key is required")
        expect(page.locator("#key")).to_be_visible()
        expect(page.locator("#result")).to_be_hidden()

        page.fill("#key", "not-the-right-key-at-all")
        page.click("#predict")
        expect(page.locator("#error")).to_contain_text("not valid")

        page.fill("#key", READ)
        page.click("#predict")
        expect(page.locator("#label")).to_have_text(re.compile(r"^(flu|viral)$"))
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("#model-info")).to_contain_text("flu, viral")
        assert page.evaluate("() => sessionStorage.getItem('kgfuse.apiKey')") == READ
