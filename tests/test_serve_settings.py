"""`kgfuse serve`'s settings: every problem at once under the name the user typed, the help and
the README's table from the same field descriptions, the limits a client sees unchanged."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic.dataclasses import dataclass

from api.ray_settings import RayOptions
from api.settings import SETTINGS, ApiKeys, ServeSettings, SettingsError, option_of
from api.settings_docs import BEGIN, END, help_text, readme_with_settings, settings_markdown
from kg.errors import KGFuseError
from nlp.linker_settings import LinkerSettings
from tests.conftest import run_cli_in_process

REPO = Path(__file__).resolve().parents[1]
READ, ADMIN = "r" * 20, "a" * 20
SHORT = "s3cr3t-but-short"[:-1]  # 15 characters
SHORTER = "API keys must be at least 16 characters; 1 is shorter (openssl rand -hex 16 makes one)"


def test_serve_settings_report_every_bad_value_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as e:
        ServeSettings(
            bundle=tmp_path,
            max_texts=0,
            request_timeout_s=float("nan"),
            max_wait_ms=-1,
            queue_size=0,
            threads=-1,
            max_batchs=8,  # type: ignore[call-arg]
        )
    assert e.value.problems == [
        ("max_texts", "must be an integer of 1 or more (got 0)"),
        ("request_timeout_s", "must be a number above 0 (got nan)"),
        ("max_wait_ms", "must be a number of 0 or more (got -1)"),
        ("queue_size", "must be an integer of 1 or more (got 0)"),
        ("threads", "must be an integer of 0 or more (got -1)"),
        ("max_batchs", "unknown setting; did you mean max_batch?"),
    ]
    assert str(e.value).splitlines()[:2] == [
        "6 bad serve setting(s):",
        "  - max_texts: must be an integer of 1 or more (got 0)",
    ]


def test_serve_settings_check_keys_where_they_come_from_and_never_show_one(
    tmp_path: Path,
) -> None:
    with pytest.raises(SettingsError, match="at least 16 characters; 1 is shorter") as e:
        ApiKeys(read=(SHORT,), admin=(ADMIN,))
    assert e.value.problems[0][0] == "read"

    env = {"KGFUSE_READ_KEYS": f"{READ}, {READ[::-1]}", "KGFUSE_ADMIN_KEYS": ADMIN}
    assert ApiKeys.from_env(env) == ApiKeys((READ, READ[::-1]), (ADMIN,))
    with pytest.raises(SettingsError) as e:
        ApiKeys.from_env({"KGFUSE_READ_KEYS": f"{SHORT},{READ},x", "KGFUSE_ADMIN_KEYS": SHORT})
    assert [name for name, _ in e.value.problems] == ["KGFUSE_READ_KEYS", "KGFUSE_ADMIN_KEYS"]
    assert "2 are shorter" in e.value.problems[0][1] and SHORT not in str(e.value)

    keys = tmp_path / "keys"
    keys.write_text(f"# team keys\nread {READ}\n\nadmin {ADMIN}\n")
    assert ApiKeys.from_file(keys) == ApiKeys((READ,), (ADMIN,))
    keys.write_text(f"writer {READ}\nread {SHORT}\n{READ}\nadmin {ADMIN}\n{ADMIN} admin\n")
    with pytest.raises(SettingsError) as e:
        ApiKeys.from_file(keys)
    assert e.value.problems == [
        (f"{keys}:1", "expected 'read KEY' or 'admin KEY', got 2 field(s) starting 'writer'"),
        (f"{keys}:2", SHORTER),
        (f"{keys}:3", "expected 'read KEY' or 'admin KEY', got 1 field(s)"),
        (f"{keys}:5", "expected 'read KEY' or 'admin KEY', got 2 field(s)"),  # reversed
    ]
    assert SHORT not in str(e.value) and READ not in str(e.value) and ADMIN not in str(e.value)


def test_serve_cli_names_each_bad_setting_as_the_user_gave_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"read {READ}\nadmin {SHORT}\n")
    monkeypatch.setenv("KGFUSE_READ_KEYS", SHORT)
    monkeypatch.delenv("KGFUSE_ADMIN_KEYS", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    args = ["serve", str(tmp_path / "no-bundle"), "--keys-file", str(keys), "--max-batch", "0"]
    code = run_cli_in_process(
        monkeypatch, *args, "--request-timeout", "-1", "--shutdown-timeout", "inf"
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.splitlines() == [
        "error: 5 bad serve setting(s):",
        f"  - KGFUSE_READ_KEYS: {SHORTER}",
        f"  - {keys}:2: {SHORTER}",
        "  - --request-timeout: must be a number above 0 (got -1.0)",
        "  - --max-batch: must be an integer of 1 or more (got 0)",
        "  - --shutdown-timeout: must be a number above 0 (got inf)",
    ]
    assert SHORT not in err


def _serve_params() -> dict[str, Any]:
    """The options of ``kgfuse serve`` as typer builds them for ``--help``."""
    from api.cli import app

    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {p.name: p for p in serve.params}


def test_serve_help_and_defaults_are_the_settings_fields() -> None:
    """Every setting a user may give is an option whose flag, default and help are the field's:
    a new field cannot be forgotten, nor its help drift from what is checked."""
    params = _serve_params()
    for defaults in (ServeSettings(bundle=Path(".")), RayOptions()):
        cls = type(defaults)
        for field in dataclasses.fields(cls):
            if field.name == "keys":  # from the environment and --keys-file
                continue
            param = params[field.name]
            assert param.opts[0] == option_of(cls, field.name).lower()  # BUNDLE: bundle
            assert getattr(param, "help", None) == help_text(field.name, cls)
            if field.name != "bundle":
                default = getattr(defaults, field.name)
                assert param.default == (list(default) if isinstance(default, tuple) else default)


def test_every_setting_is_described_in_one_sentence() -> None:
    """A field's description is its attribute docstring: a field without one would show an
    empty help, and a docstring that wraps must still read as one line in help and tables."""
    for cls in (ServeSettings, RayOptions, ApiKeys, LinkerSettings):
        for field in dataclasses.fields(cls):
            text = help_text(field.name, cls)
            assert len(text) > 10, f"{cls.__name__}.{field.name} has no docstring"
            assert "\n" not in text and "  " not in text, text

    @dataclass(config=SETTINGS)
    class Wrapped:
        limit: int = 3
        """the most texts a request may hold; more is a 422, and the client splits
        them over several requests"""

    assert "\n" in vars(Wrapped)["__pydantic_fields__"]["limit"].description
    assert help_text("limit", Wrapped) == (
        "The most texts a request may hold; more is a 422, and the client splits them over "
        "several requests."
    )


def test_serve_settings_readme_table_is_the_models_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == "\n" + settings_markdown(), (
        "README.md's serve settings table differs from api/settings.py: run "
        "`python -m api.settings_docs README.md`"
    )
    assert readme_with_settings(readme) == readme
    assert "| `--max-texts` | 64 | Texts per POST /v1/predict request;" in block
    with pytest.raises(KGFuseError, match="no <!-- serve-settings:begin -->"):
        readme_with_settings("no markers\n")


def test_serve_settings_public_limits_are_the_clients_view() -> None:
    """`GET /v1/model`'s ``limits``: no keys, paths or process details."""
    assert ServeSettings(bundle=Path("."), keys=ApiKeys((READ,), (ADMIN,))).public() == {
        "max_body_bytes": 1_000_000,
        "max_texts": 64,
        "max_chars": 5_000,
        "max_top_k_paths": 10,
        "request_timeout_s": 30.0,
        "max_batch": 32,
        "max_wait_ms": 5.0,
        "queue_size": 256,
        "shutdown_timeout_s": 30.0,
        "max_new_entities": 10_000,
    }


def test_settings_docs_tool_answers_help_and_a_missing_readme_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.settings_docs import main

    assert main(["--help"]) == 0 and "usage:" in capsys.readouterr().out
    assert main([str(tmp_path / "README.md")]) == 1
    assert "not found" in capsys.readouterr().err


def test_serve_cli_refuses_keys_asked_for_but_none_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A key file of only comments, or KGFUSE_READ_KEYS set from an empty variable, served with
    reading open to anyone (one warning line in the log) where the operator meant keys."""
    keys = tmp_path / "keys"
    keys.write_text("# the keys go here\n\n")
    monkeypatch.setenv("KGFUSE_READ_KEYS", " , ")
    monkeypatch.delenv("KGFUSE_ADMIN_KEYS", raising=False)
    monkeypatch.delenv("KGFUSE_KEYS_FILE", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    args = ["serve", str(tmp_path / "no-bundle"), "--keys-file", str(keys)]
    code = run_cli_in_process(monkeypatch, *args)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[0] == "error: 2 bad serve setting(s):"
    assert lines[1].startswith(f"  - {keys}: holds no key (only blank or '#' lines); add lines")
    assert lines[2].startswith("  - KGFUSE_READ_KEYS: is set but holds no key")
    # unset, and without a key file, there are no keys: reading is open, as documented
    monkeypatch.delenv("KGFUSE_READ_KEYS")
    code = run_cli_in_process(monkeypatch, "serve", str(tmp_path / "no-bundle"))
    err = capsys.readouterr().err
    assert code == 1 and "no model bundle" in err and "bad serve setting" not in err


def test_serve_cli_warns_of_secret_files_every_user_may_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An API key file left 0644 (what a shell's umask gives) let every local user read the
    admin key, silently."""
    keys = tmp_path / "keys"
    keys.write_text(f"admin {ADMIN}\n")
    for variable in ("KGFUSE_READ_KEYS", "KGFUSE_ADMIN_KEYS", "KGFUSE_KEYS_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    args = ["serve", str(tmp_path / "no-bundle"), "--keys-file", str(keys)]
    keys.chmod(0o644)
    assert run_cli_in_process(monkeypatch, *args) == 1  # the bundle is missing
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"warning: --keys-file {keys} may be read by every user (mode 0644), and it holds a "
        f"secret; make it private: chmod 600 {keys}"
    )
    assert "no model bundle" in err[1] and ADMIN not in "\n".join(err)
    keys.chmod(0o640)  # a group the operator chose: no warning
    assert run_cli_in_process(monkeypatch, *args) == 1
    assert "warning" not in capsys.readouterr().err
