"""`kgfuse serve BUNDLE`: the HTTP service on uvicorn."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import socket
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from api.ray_settings import RayOptions
from api.settings import ApiKeys, ServeSettings, SettingsError, option_of, panel_of
from api.settings_docs import help_text
from fusion.bundle_crypto import KEY_ENV, BundleCryptoError, is_encrypted, read_header, read_key
from kg.errors import KGFuseError

if TYPE_CHECKING:
    from api.engine import Engine
    from api.metrics import Metrics

DEFAULTS: dict[type, Any] = {
    ServeSettings: ServeSettings(bundle=Path(".")),
    RayOptions: RayOptions(),
}


def _ray_options_without_ray(options: dict[str, Any]) -> list[tuple[str, str]]:
    """Ray options without ``--ray`` would be silently ignored: each is a problem instead."""
    return [
        (option_of(RayOptions, name), "needs --ray (serving with Ray Serve)")
        for name, value in options.items()
        if value != getattr(DEFAULTS[RayOptions], name)
    ]


def drop_query_strings(record: logging.LogRecord) -> bool:
    """uvicorn's access log without query strings: ``/v1/kg/search?q=...`` carries user text."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
        record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
    return True


def _setting(name: str, cls: type = ServeSettings) -> Any:
    """The option of ``cls``'s field ``name`` (`ServeSettings`, `RayOptions`): its flag,
    default, help and panel all come from the field, so ``--help`` says what the settings
    check."""
    default = getattr(DEFAULTS[cls], name)
    return typer.Option(
        list(default) if isinstance(default, tuple) else default,
        option_of(cls, name),
        help=help_text(name, cls),
        show_default=default is not None and default != (),
        rich_help_panel=panel_of(cls, name),
    )


def _fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The items of ``values`` that are fields of ``cls``."""
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}


def serve_command(
    bundle: Path = typer.Argument(..., help=help_text("bundle")),
    bundle_key_file: Path | None = _setting("bundle_key_file"),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    keys_file: Path | None = typer.Option(
        None,
        "--keys-file",
        envvar="KGFUSE_KEYS_FILE",
        help="API keys, one per line: 'read KEY' or 'admin KEY'. Also KGFUSE_READ_KEYS / "
        "KGFUSE_ADMIN_KEYS (comma-separated). No key at all: reading is open.",
    ),
    max_body_bytes: int = _setting("max_body_bytes"),
    max_texts: int = _setting("max_texts"),
    max_chars: int = _setting("max_chars"),
    max_top_k_paths: int = _setting("max_top_k_paths"),
    request_timeout_s: float = _setting("request_timeout_s"),
    max_batch: int = _setting("max_batch"),
    max_wait_ms: float = _setting("max_wait_ms"),
    queue_size: int = _setting("queue_size"),
    shutdown_timeout_s: float = _setting("shutdown_timeout_s"),
    threads: int = _setting("threads"),
    cors_origins: list[str] = _setting("cors_origins"),
    log_texts: bool = _setting("log_texts"),
    anonymize: bool = _setting("anonymize"),
    max_new_entities: int = _setting("max_new_entities"),
    hot_triples_dir: Path | None = _setting("hot_triples_dir"),
    kg_source: str | None = _setting("kg_source"),
    tls_cert: Path | None = _setting("tls_cert"),
    tls_key: Path | None = _setting("tls_key"),
    ray: bool = typer.Option(
        False,
        "--ray",
        help="Serve with Ray Serve: replicas, autoscaling, clusters. Needs the 'ray' extra.",
        rich_help_panel="Ray Serve",
    ),
    replicas: int = _setting("replicas", RayOptions),
    autoscale_min: int | None = _setting("autoscale_min", RayOptions),
    autoscale_max: int | None = _setting("autoscale_max", RayOptions),
    target_ongoing_requests: float | None = _setting("target_ongoing_requests", RayOptions),
    upscale_delay_s: float | None = _setting("upscale_delay_s", RayOptions),
    downscale_delay_s: float | None = _setting("downscale_delay_s", RayOptions),
    replica_cpus: float = _setting("replica_cpus", RayOptions),
    address: str | None = _setting("address", RayOptions),
    num_cpus: int | None = _setting("num_cpus", RayOptions),
) -> None:
    """Serve a bundle over HTTP: predictions with paths, KG look-ups, a web page at /."""
    given = locals()  # each option's value, under the name of the settings field it sets
    ray_options = _fields(RayOptions, given)
    problems = tls_problems(tls_cert, tls_key)
    if ray and tls_cert is not None:
        problems.append(("--ray", RAY_TLS))
    problems += encryption_problems(bundle, bundle_key_file, hot_triples_dir, ray)
    if not ray:
        problems += _ray_options_without_ray(ray_options)
    settings, ray_settings = _settings(
        keys_file, problems, ray_options if ray else None, **_fields(ServeSettings, given)
    )
    for warning in exposed_secrets(keys_file, bundle_key_file, tls_key):
        typer.echo(f"warning: {warning}", err=True)
    from fusion.bundle import read_meta

    # a missing or broken bundle (or a wrong key) is one clear line, before the server starts
    if is_encrypted(bundle):
        with open(bundle, "rb") as f:
            read_header(bundle, f, read_key(bundle_key_file))
    else:
        read_meta(bundle)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not settings.log_texts or settings.anonymize:  # a search query is not redacted
        logging.getLogger("uvicorn.access").addFilter(drop_query_strings)
    if ray_settings is not None:  # --ray
        from api.ray_serve import serve_with_ray

        serve_with_ray(settings, ray_settings, host, port)
        return
    run_server(settings, host, port, log_level="info")


def _settings(
    keys_file: Path | None,
    problems: list[tuple[str, str]],
    ray_options: dict[str, Any] | None,
    **options: Any,
) -> tuple[ServeSettings, RayOptions | None]:
    """`ServeSettings` from the command line and the environment, and the `RayOptions` built
    from ``ray_options`` (None: not serving with Ray).

    Raises:
        SettingsError: ``problems`` (found before) and every problem of the settings at once,
            each named as the user gave it: the option (``--max-batch``), the variable
            (``KGFUSE_READ_KEYS``) or the key file's line.
    """
    problems = list(problems)
    keys = ApiKeys()
    try:
        # the key file comes through --keys-file (typer reads KGFUSE_KEYS_FILE into it)
        keys = ApiKeys.from_env({k: v for k, v in os.environ.items() if k != "KGFUSE_KEYS_FILE"})
    except SettingsError as e:
        problems.extend(e.problems)
    try:
        if keys_file is not None:
            from_file = ApiKeys.from_file(keys_file)
            if not from_file.read + from_file.admin:
                problems.append((str(keys_file), NO_KEY_IN_FILE))
            keys = keys.merged(from_file)
    except SettingsError as e:
        problems.extend(e.problems)
    problems += [(variable, NO_KEY_IN_VARIABLE) for variable in _empty_key_variables()]
    settings = _built(ServeSettings, {"keys": keys, **options}, problems)
    ray = None if ray_options is None else _built(RayOptions, ray_options, problems)
    if problems:
        raise SettingsError.listing(problems)
    return settings, ray


# Keys asked for but none given: refused, not read as "no keys" (which leaves reading open).
NO_KEY_IN_FILE = (
    "holds no key (only blank or '#' lines); add lines 'read KEY' or 'admin KEY' (openssl rand "
    "-hex 16 makes a key), or drop --keys-file"
)
NO_KEY_IN_VARIABLE = (
    "is set but holds no key (was the variable it came from empty?), so reading would be open "
    "to anyone; give at least one key, or unset it to serve without keys"
)


def _empty_key_variables() -> list[str]:
    """The read-key variable when it is set yet holds nothing but commas and spaces."""
    name = option_of(ApiKeys, "read")
    return [name] if name in os.environ and not os.environ[name].replace(",", "").strip() else []


def exposed_secrets(
    keys_file: Path | None, bundle_key_file: Path | None, tls_key: Path | None
) -> list[str]:
    """A line for each secret file that every user of the machine may read: the API keys, the
    bundle key, the TLS private key (``chmod 600`` is the fix; a warning, not a refusal, since
    a container's mounted secrets are often 0644 with no other user to read them)."""
    named = (("--keys-file", keys_file), ("--key-file", bundle_key_file), ("--tls-key", tls_key))
    lines = []
    for option, path in named:
        try:
            mode = path.stat().st_mode if path is not None else 0
        except OSError:
            continue  # a missing file is reported as such elsewhere
        if mode & stat.S_IROTH and stat.S_ISREG(mode):
            lines.append(
                f"{option} {path} may be read by every user (mode {stat.S_IMODE(mode):04o}), and "
                f"it holds a secret; make it private: chmod 600 {path}"
            )
    return lines


def _built(cls: type, values: dict[str, Any], problems: list[tuple[str, str]]) -> Any:
    """``cls(**values)``; or None, its problems added to ``problems``, each named by its option."""
    try:
        return cls(**values)
    except SettingsError as e:
        problems.extend(e.renamed(lambda name: option_of(cls, name)).problems)
        return None


RAY_ENCRYPTED = (
    "cannot serve an encrypted bundle: each Ray replica loads the bundle folder itself; serve "
    "without --ray, or decrypt it (kgfuse bundle decrypt) onto storage only the server can read"
)
HOT_ENCRYPTED = (
    "is required with an encrypted bundle: the triples added over HTTP persist there "
    "(unencrypted), since the decrypted bundle is never kept on disk"
)


def encryption_problems(
    bundle: Path, key_file: Path | None, hot_triples_dir: Path | None, ray: bool
) -> list[tuple[str, str]]:
    """What stops serving ``bundle`` with this key, as ``(option, problem)`` pairs: an encrypted
    bundle needs a well-formed key, a hot-triples folder outside it, and no Ray; a plain one
    takes no --key-file. Whether the key is the right one is checked next, by the header."""
    if not is_encrypted(bundle):
        if key_file is None:
            return []
        return [("--key-file", f"{bundle} is not an encrypted bundle; drop --key-file")]
    problems = []
    try:
        read_key(key_file)
    except BundleCryptoError as e:
        problems.append(("--key-file" if key_file is not None else KEY_ENV, str(e)))
    if hot_triples_dir is None:
        problems.append(("--hot-triples-dir", HOT_ENCRYPTED))
    if ray:
        problems.append(("--ray", RAY_ENCRYPTED))
    return problems


def load_engine(settings: ServeSettings, metrics: Metrics) -> Engine:
    """`Engine.load` of ``settings.bundle``; an encrypted one is decrypted into a private
    temporary folder (RAM-backed when /dev/shm exists) that is removed once the bundle is in
    memory, or on any error or stopping signal (SIGTERM, SIGHUP, ...) on the way. After loading
    the service reads nothing from the bundle folder: hot triples live in ``--hot-triples-dir``
    (required here)."""
    from api.engine import Engine
    from fusion.bundle_crypto import decrypted_bundle

    if not is_encrypted(settings.bundle):
        return Engine.load(settings, metrics)
    key = read_key(settings.bundle_key_file)
    with decrypted_bundle(settings.bundle, key) as folder:  # stopping signals included
        engine = Engine.load(dataclasses.replace(settings, bundle=folder), metrics)
    engine.settings = settings  # the user's path, not the removed folder
    return engine


RAY_TLS = (
    "cannot serve TLS: kgfuse does not pass --tls-cert to Ray Serve's proxy; serve without "
    "--ray, or end TLS in a proxy in front of it"
)


class _EncryptedKey(Exception):
    """Raised by the password callback: the key needs a password that kgfuse never asks for."""


def _no_password() -> str:
    raise _EncryptedKey  # OpenSSL would otherwise prompt on the terminal and block


def tls_problems(cert: Path | None, key: Path | None) -> list[tuple[str, str]]:
    """What stops uvicorn serving HTTPS with ``cert`` and ``key``, as ``(option, problem)`` pairs.

    Both or neither; each readable; the certificate a PEM certificate, the key its unencrypted
    PEM private key. Checked by loading them as the server would (`ssl.SSLContext.load_cert_chain`),
    so a bad pair is one line before the bundle loads instead of a traceback after.
    """
    if cert is None and key is None:
        return []
    if cert is None or key is None:
        missing, given = ("--tls-key", "--tls-cert") if key is None else ("--tls-cert", "--tls-key")
        return [(missing, f"is required with {given}: HTTPS needs the certificate and its key")]
    files = (("--tls-cert", cert), ("--tls-key", key))
    problems = [(o, f"cannot read {p}: {why}") for o, p in files if (why := _unreadable(p))]
    if problems:
        return problems
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        return [("--tls-cert", f"{cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        fix = f"openssl pkey -in {key} -out PLAIN.pem, readable only by the server's user"
        return [("--tls-key", f"{key} is encrypted; give it unencrypted ({fix})")]
    except ssl.SSLError as e:
        # a key of another type (EC for an RSA certificate) finds no certificate of its type
        if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            return [("--tls-key", f"{key} is not the private key of the certificate {cert}")]
        if e.reason is None:  # OpenSSL's "PEM lib": the file parsed as no key at all
            return [("--tls-key", f"{key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")]
        return [("--tls-key", f"OpenSSL refuses {key} with {cert}: {e.reason}")]  # a weak key, say
    return []


def _unreadable(path: Path) -> str:
    """Why ``path`` cannot be read ("" when it can)."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return e.strerror or type(e).__name__
    return ""


def check_port(host: str, port: int) -> None:
    """Refuse an address uvicorn could not listen on (a port another program holds, an address
    of another machine), before minutes of loading or training are spent on it.

    Raises:
        KGFuseError: naming the address and the fix.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise KGFuseError(
            f"--host {host!r} cannot be resolved to an address ({e.strerror}); "
            "pass --host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from e
    for family, kind, proto, _, address in infos:  # asyncio's server binds every one
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
                probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise KGFuseError(
                    f"port {port} on {host} is in use by another program; pass another "
                    f"--port (e.g. --port {port + 1 if port < 65535 else 8000}) or stop that "
                    "program"
                ) from e
            if e.errno == errno.EADDRNOTAVAIL:
                raise KGFuseError(
                    f"--host {host} is not an address of this machine; pass --host 127.0.0.1 "
                    "(this machine only) or 0.0.0.0 (every interface)"
                ) from e
            if e.errno == errno.EACCES:
                raise KGFuseError(
                    f"no permission to listen on port {port} (ports below 1024 need root); "
                    "pass --port 1024 or above"
                ) from e
            raise


def run_server(settings: ServeSettings, host: str, port: int, log_level: str) -> None:
    """Load the bundle (a broken bundle or hot-triples file is one `KGFuseError`, before the
    server starts), then serve it on uvicorn until stopped. A port in use is refused first."""
    import uvicorn

    from api.app import create_app
    from api.http_protocol import http_protocol
    from api.metrics import Metrics

    check_port(host, port)
    engine = load_engine(settings, Metrics())
    uvicorn.run(
        create_app(settings, engine),
        host=host,
        port=port,
        http=http_protocol(),
        ws="none",  # no WebSocket routes: an upgrade is answered as HTTP (it was a bare 403)
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        log_level=log_level,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
