"""What `kgfuse serve` can be told: the bundle, limits, batching, keys. Checked when built.

Every field has a default that is safe to expose on a network; `ServeSettings.check` reports
every bad value at once, naming the value and the range it must lie in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from kg.errors import KGFuseError


class SettingsError(KGFuseError):
    """A serve setting or key file is wrong; the message names it and the fix."""


@dataclass(frozen=True)
class ApiKeys:
    """Keys by scope. ``admin`` keys may also read. Without read keys, reading is open (and the
    server warns); without admin keys, the KG cannot be changed over HTTP."""

    read: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    @property
    def reading_open(self) -> bool:
        return not self.read

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ApiKeys:
        """``KGFUSE_READ_KEYS`` / ``KGFUSE_ADMIN_KEYS``: comma-separated; ``KGFUSE_KEYS_FILE``."""
        env = os.environ if environ is None else environ
        keys = cls(
            _split(env.get("KGFUSE_READ_KEYS", "")), _split(env.get("KGFUSE_ADMIN_KEYS", ""))
        )
        if env.get("KGFUSE_KEYS_FILE"):
            keys = keys.merged(cls.from_file(env["KGFUSE_KEYS_FILE"]))
        return keys

    @classmethod
    def from_file(cls, path: str | Path) -> ApiKeys:
        """One key a line, ``read KEY`` or ``admin KEY``; blank lines and ``#`` comments skipped."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"cannot read the API key file {path}: {e}") from e
        read: list[str] = []
        admin: list[str] = []
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("read", "admin"):
                raise SettingsError(
                    f"{path}:{n}: expected 'read KEY' or 'admin KEY', got {len(parts)} field(s)"
                    + (f" starting {parts[0]!r}" if parts else "")
                )
            (read if parts[0] == "read" else admin).append(parts[1])
        return cls(tuple(read), tuple(admin))

    def merged(self, other: ApiKeys) -> ApiKeys:
        return ApiKeys(self.read + other.read, self.admin + other.admin)

    def check(self) -> list[str]:
        short = [k for k in self.read + self.admin if len(k) < 16]
        return (
            [f"API keys must be at least 16 characters; {len(short)} are shorter"] if short else []
        )


def _split(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one service process. Defaults suit a single 2-core machine."""

    bundle: Path  # a bundle folder written by `kgfuse train` or `kgfuse export`
    keys: ApiKeys = field(default_factory=ApiKeys)
    max_body_bytes: int = 1_000_000  # larger request bodies get 413
    max_texts: int = 64  # texts per /v1/predict request (422 above)
    max_chars: int = 5_000  # characters per text (422 above)
    max_top_k_paths: int = 10  # top_k_paths a request may ask for
    request_timeout_s: float = 30.0  # a request waiting longer for the model gets 504
    max_batch: int = 32  # texts the model runs at once
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    queue_size: int = 256  # requests waiting for the model; beyond it 503 + Retry-After
    shutdown_timeout_s: float = 30.0  # on stop, queued requests get this long to finish
    threads: int = 0  # torch threads for the model (0: torch's default)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API (none: CORS off)
    log_texts: bool = False  # write request texts to the log (off: texts may be private)
    max_new_entities: int = 10_000  # entities one POST /v1/kg/triples may add (413 above)
    hot_triples_dir: Path | None = (
        None  # where POST /v1/kg/triples persists (None: BUNDLE/hot-triples)
    )
    kg_source: str | None = None  # a triple-store bundle's endpoint URL or store folder, moved

    def __post_init__(self) -> None:
        problems = self.keys.check()
        positive = (
            "max_body_bytes",
            "max_texts",
            "max_chars",
            "max_top_k_paths",
            "max_batch",
            "max_new_entities",
        )
        for name in (*positive, "queue_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("request_timeout_s", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be above 0 (got {getattr(self, name)})")
        if self.max_wait_ms < 0 or self.threads < 0:
            problems.append(
                f"max_wait_ms and threads must be 0 or more (got {self.max_wait_ms}, {self.threads})"
            )
        if problems:
            raise SettingsError("bad serve settings: " + "; ".join(problems))

    @property
    def hot_triples(self) -> Path:
        return self.hot_triples_dir or Path(self.bundle) / "hot-triples"

    def public(self) -> dict[str, object]:
        """The limits a client may want to know (no keys, no paths)."""
        hidden = {
            "bundle",
            "keys",
            "hot_triples_dir",
            "log_texts",
            "cors_origins",
            "threads",
            "kg_source",
        }
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
