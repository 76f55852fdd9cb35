"""The start-up warning about open reading says what is missing: read keys. With admin keys
only (as `kgfuse demo` serves), "no API keys configured" was false."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiKeys, ServeSettings

ADMIN = "admin-key-0123456789abcdef"
READ = "read-key-0123456789abcdef"


def _warnings(caplog: pytest.LogCaptureFixture, keys: ApiKeys, bundle: Path) -> list[str]:
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING),
        TestClient(create_app(ServeSettings(bundle=bundle, keys=keys))) as client,
    ):
        assert client.get("/health").status_code == 200
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_admin_keys_without_read_keys_warn_of_missing_read_keys(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    said = [m for m in _warnings(caplog, ApiKeys(admin=(ADMIN,)), tiny_bundle) if "open" in m]
    assert said == [
        "no read keys configured (KGFUSE_READ_KEYS, or 'read KEY' lines of --keys-file): "
        "reading is open to anyone who can connect"
    ]


def test_read_keys_silence_the_warning(tiny_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = ApiKeys(read=(READ,), admin=(ADMIN,))
    assert [m for m in _warnings(caplog, keys, tiny_bundle) if "open" in m] == []
