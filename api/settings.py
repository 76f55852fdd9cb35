"""What `kgfuse serve` can be told: the bundle, limits, batching, keys. Checked when built.

`ServeSettings` and `ApiKeys`, like `api.ray_settings.RayOptions` (``--ray``), are pydantic
dataclasses: each field's default, bounds and docstring (its description) are the one
definition of the setting. ``kgfuse serve --help`` (api/serve.py) and the README's table
(api/settings_docs.py) are built from them, and a bad value is a `SettingsError` listing every
problem at once, each under the name the user typed: the option (``--max-batch``), the
environment variable (``KGFUSE_READ_KEYS``) or the key file's line. Every default is safe to
expose on a network.

Rewrite the README's table after changing a field: ``python -m api.settings_docs README.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from fusion.config_keys import describe
from kg.errors import KGFuseError

MIN_KEY_LENGTH = 16
SETTINGS = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class SettingsError(KGFuseError):
    """Serve settings or a key file are wrong; the message names each problem and its setting.

    Attributes:
        problems: ``(setting, what is wrong)`` pairs; the setting is "" for a whole-run problem.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems if problems is not None else [("", message)]

    @classmethod
    def listing(cls, problems: list[tuple[str, str]]) -> SettingsError:
        """One error listing ``problems``, one line each."""
        lines = [f"{name}: {message}" if name else message for name, message in problems]
        return cls(f"{len(problems)} bad serve setting(s):\n  - " + "\n  - ".join(lines), problems)

    def renamed(self, name: Callable[[str], str]) -> SettingsError:
        """The same problems, each setting called ``name(setting)`` (its option, say)."""
        return SettingsError.listing([(name(k) if k else k, m) for k, m in self.problems])


def _option(name: str) -> Any:
    """Field metadata: the option (or environment variable) through which a user sets it."""
    return {"option": name}


def checked(cls: type, values: Any, handler: Callable[[Any], Any]) -> Any:
    """Validate ``values``; every problem becomes one line of a `SettingsError`."""
    try:
        return handler(values)
    except ValidationError as e:
        raise SettingsError.listing(_problems(cls, e)) from None


Key = Annotated[str, Field(min_length=MIN_KEY_LENGTH)]


@dataclass(frozen=True, config=SETTINGS)
class Checked:
    """Settings checked when built: every bad value is one line of a single `SettingsError`."""

    @model_validator(mode="wrap")
    @classmethod
    def _all_at_once(cls, values: Any, handler: Callable[[Any], Any]) -> Any:
        return checked(cls, values, handler)


@dataclass(frozen=True, config=SETTINGS)
class ApiKeys(Checked):
    """Keys by scope. ``admin`` keys may also read. Without read keys, reading is open (and the
    server warns); without admin keys, the KG cannot be changed over HTTP."""

    read: tuple[Key, ...] = Field(default=(), json_schema_extra=_option("KGFUSE_READ_KEYS"))
    """keys that may call the read routes, comma-separated (none: reading is open)"""
    admin: tuple[Key, ...] = Field(default=(), json_schema_extra=_option("KGFUSE_ADMIN_KEYS"))
    """keys that may also add triples over HTTP, comma-separated (none: the KG cannot be changed
    over HTTP)"""

    @property
    def reading_open(self) -> bool:
        return not self.read

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ApiKeys:
        """``KGFUSE_READ_KEYS`` / ``KGFUSE_ADMIN_KEYS``: comma-separated; ``KGFUSE_KEYS_FILE``.

        Raises:
            SettingsError: every problem, named by its variable (or file line).
        """
        env = os.environ if environ is None else environ
        problems: list[tuple[str, str]] = []
        keys = cls()
        for scope in ("read", "admin"):
            variable = option_of(cls, scope)
            try:
                keys = keys.merged(cls(**{scope: _split(env.get(variable, ""))}))
            except SettingsError as e:
                problems.extend((variable, message) for _, message in e.problems)
        if env.get("KGFUSE_KEYS_FILE"):
            try:
                keys = keys.merged(cls.from_file(env["KGFUSE_KEYS_FILE"]))
            except SettingsError as e:
                problems.extend(e.problems)
        if problems:
            raise SettingsError.listing(problems)
        return keys

    @classmethod
    def from_file(cls, path: str | Path) -> ApiKeys:
        """One key a line, ``read KEY`` or ``admin KEY``; blank lines and ``#`` comments skipped.

        Raises:
            SettingsError: the file cannot be read, or every bad line, named ``PATH:LINE``.
        """
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"cannot read the API key file {path}: {e}") from e
        keys = cls()
        problems: list[tuple[str, str]] = []
        for n, line in enumerate(lines, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2 or parts[0] not in ("read", "admin"):
                # any field may be a key (`KEY admin`, reversed): only a word too short to be
                # one is shown
                shown = len(parts) > 1 and len(parts[0]) < MIN_KEY_LENGTH
                start = f" starting {parts[0]!r}" if shown else ""
                expected = f"expected 'read KEY' or 'admin KEY', got {len(parts)} field(s){start}"
                problems.append((f"{path}:{n}", expected))
                continue
            try:
                keys = keys.merged(cls(**{parts[0]: (parts[1],)}))
            except SettingsError as e:
                problems.extend((f"{path}:{n}", message) for _, message in e.problems)
        if problems:
            raise SettingsError.listing(problems)
        return keys

    def merged(self, other: ApiKeys) -> ApiKeys:
        return ApiKeys(self.read + other.read, self.admin + other.admin)


def _split(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


@dataclass(frozen=True, config=SETTINGS)
class ServeSettings(Checked):
    """Settings of one service process. Defaults suit a single 2-core machine."""

    bundle: Path = Field(json_schema_extra=_option("BUNDLE"))
    """a bundle folder written by kgfuse train or kgfuse export, or a .kgfe file written by kgfuse
    bundle encrypt"""
    bundle_key_file: Path | None = Field(default=None, json_schema_extra=_option("--key-file"))
    """the key of an encrypted BUNDLE (.kgfe), a file written by kgfuse bundle keygen (none: the
    KGFUSE_BUNDLE_KEY variable); it is decrypted into a private temporary folder (in /dev/shm
    when it has room) removed once loaded"""
    keys: ApiKeys = Field(default_factory=ApiKeys)
    """API keys by scope (KGFUSE_READ_KEYS, KGFUSE_ADMIN_KEYS, --keys-file)"""
    max_body_bytes: int = Field(
        default=1_000_000, ge=1, json_schema_extra=_option("--max-body-bytes")
    )
    """bytes a request body may hold; more is a 413 (declared, or counted while a chunked body
    arrives)"""
    max_texts: int = Field(default=64, ge=1, json_schema_extra=_option("--max-texts"))
    """texts per POST /v1/predict request; more is a 422 too_many_texts"""
    max_chars: int = Field(default=5_000, ge=1, json_schema_extra=_option("--max-chars"))
    """characters per text; more is a 422 text_too_long"""
    max_top_k_paths: int = Field(default=10, ge=1, json_schema_extra=_option("--max-top-k-paths"))
    """paths per text a request may ask for (top_k_paths); more is a 422 too_many_paths"""
    request_timeout_s: float = Field(
        default=30.0, gt=0, json_schema_extra=_option("--request-timeout")
    )
    """seconds a request may wait for the model; then a 504 timeout"""
    max_batch: int = Field(default=32, ge=1, json_schema_extra=_option("--max-batch"))
    """texts the model runs at once: concurrent requests share one model call"""
    max_wait_ms: float = Field(default=5.0, ge=0, json_schema_extra=_option("--max-wait-ms"))
    """milliseconds the first request of a batch waits for more to join it (not a request that finds
    the model idle after a batch of one: a lone client)"""
    queue_size: int = Field(default=256, ge=1, json_schema_extra=_option("--queue-size"))
    """requests that may wait for the model; beyond, a 503 overloaded with Retry-After: 1"""
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, json_schema_extra=_option("--shutdown-timeout")
    )
    """seconds the queued requests get to finish when the server is stopped"""
    threads: int = Field(default=0, ge=0, json_schema_extra=_option("--threads"))
    """torch threads of the model (0: torch's default, one per core); a call of at most 128 tokens,
    and each explanation, runs on one"""
    cors_origins: tuple[str, ...] = Field(default=(), json_schema_extra=_option("--cors-origin"))
    """a browser origin allowed to call the API; repeat for more (none: CORS off)"""
    log_texts: bool = Field(default=False, json_schema_extra=_option("--log-texts"))
    """write request texts to the log (off: texts may be private)"""
    anonymize: bool = Field(default=False, json_schema_extra=_option("--anonymize"))
    """redact personal data (names, e-mails, phones, addresses, IBAN, card and SSN numbers) from
    each text as it arrives, before it is linked, predicted or logged; the KG's own entity names
    are kept"""
    max_new_entities: int = Field(
        default=10_000, ge=1, json_schema_extra=_option("--max-new-entities")
    )
    """entities one POST /v1/kg/triples may add; more is a 413 too_many_entities"""
    hot_triples_dir: Path | None = Field(
        default=None, json_schema_extra=_option("--hot-triples-dir")
    )
    """where the triples added over HTTP persist (none: BUNDLE/hot-triples)"""
    kg_source: str | None = Field(default=None, json_schema_extra=_option("--kg-endpoint"))
    """for a bundle trained over a triple store: read it from this SPARQL endpoint URL or store
    folder instead (same triples)"""

    tls_cert: Path | None = Field(default=None, json_schema_extra=_option("--tls-cert"))
    """serve HTTPS with this PEM certificate (chain), with --tls-key (none: plain HTTP)"""
    tls_key: Path | None = Field(default=None, json_schema_extra=_option("--tls-key"))
    """the unencrypted PEM private key of --tls-cert"""

    @property
    def hot_triples(self) -> Path:
        return self.hot_triples_dir or Path(self.bundle) / "hot-triples"

    def public(self) -> dict[str, object]:
        """The limits a client may want to know (no keys, no paths)."""
        hidden = {
            "bundle",
            "bundle_key_file",
            "keys",
            "hot_triples_dir",
            "log_texts",
            "anonymize",  # a client sees it in each answer's `anonymized`
            "cors_origins",
            "threads",
            "kg_source",
            "tls_cert",
            "tls_key",
        }
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in hidden
        }


# ----------------------------------------------------------------- problems, in the user's words


@cache
def _properties(cls: type) -> dict[str, dict[str, Any]]:
    props: dict[str, dict[str, Any]] = TypeAdapter(cls).json_schema()["properties"]
    return props


def option_of(cls: type, name: str) -> str:
    """The option or environment variable that sets ``cls``'s field ``name`` (else the name)."""
    option = _properties(cls).get(name, {}).get("option")
    return option if isinstance(option, str) else name


def panel_of(cls: type, name: str) -> str | None:
    """The ``kgfuse serve --help`` panel of ``cls``'s field ``name`` (None: the options')."""
    panel = _properties(cls).get(name, {}).get("panel")
    return panel if isinstance(panel, str) else None


def _expected(prop: dict[str, Any]) -> str:
    """What a field takes, in words; an optional one may be left out (None: a flag not given)."""
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    return f"{describe(options[0])}, or left out" if options else describe(prop)


def _problems(cls: type, error: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors as ``(field, message)``, one per field. Key values are never shown."""
    names = [f.name for f in dataclasses.fields(cls)]
    by_field: dict[str, list[Any]] = {}
    for e in error.errors():
        first = e["loc"][0] if e["loc"] else ""
        name = names[first] if isinstance(first, int) and first < len(names) else str(first)
        if e["type"] == "unexpected_positional_argument":
            name = ""
        by_field.setdefault(name, []).append(e)
    return [(name, _message(cls, name, errors, names)) for name, errors in by_field.items()]


def _message(cls: type, name: str, errors: list[Any], names: list[str]) -> str:
    kind = errors[0]["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        return f"unknown setting; did you mean {close[0]}?" if close else "unknown setting"
    if kind == "unexpected_positional_argument":
        return f"{len(errors)} value(s) too many; give the settings by name (max_texts=64)"
    if kind in ("missing", "missing_argument"):
        return "is required"
    if cls is ApiKeys:  # never echo a key
        if all(e["type"] == "string_too_short" for e in errors):
            n = len(errors)
            return (
                f"API keys must be at least {MIN_KEY_LENGTH} characters; {n} "
                f"{'is' if n == 1 else 'are'} shorter (openssl rand -hex 16 makes one)"
            )
        return "must be a list of key strings"
    shown = repr(errors[0]["input"])
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"must be {_expected(_properties(cls).get(name, {}))} (got {shown})"
