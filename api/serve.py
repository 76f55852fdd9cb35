"""`kgfuse serve BUNDLE`: the HTTP service on uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import typer

from api.ray_serve import RayOptions
from api.settings import ApiKeys, ServeSettings, SettingsError

DEFAULTS = ServeSettings(bundle=Path("."))
RAY_DEFAULTS = RayOptions()
RAY_FLAGS = {"address": "--ray-address", "num_cpus": "--ray-num-cpus"}  # the others: --NAME


def _refuse_ray_options(options: dict[str, Any]) -> None:
    """Ray options without ``--ray`` would be silently ignored: say so instead."""
    names = [
        RAY_FLAGS.get(name, "--" + name.replace("_", "-"))
        for name, value in options.items()
        if value != getattr(RAY_DEFAULTS, name)
    ]
    if names:
        raise SettingsError(f"{', '.join(names)} need --ray (serving with Ray Serve)")


def drop_query_strings(record: logging.LogRecord) -> bool:
    """uvicorn's access log without query strings: ``/v1/kg/search?q=...`` carries user text."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
        record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
    return True


def serve_command(
    bundle: Path = typer.Argument(..., help="A bundle folder (kgfuse train / export)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    keys_file: Path | None = typer.Option(
        None,
        "--keys-file",
        envvar="KGFUSE_KEYS_FILE",
        help="API keys, one per line: 'read KEY' or 'admin KEY'. Also KGFUSE_READ_KEYS / "
        "KGFUSE_ADMIN_KEYS (comma-separated). No key at all: reading is open.",
    ),
    max_texts: int = typer.Option(DEFAULTS.max_texts, help="Texts per request (422 above)."),
    max_chars: int = typer.Option(DEFAULTS.max_chars, help="Characters per text (422 above)."),
    max_body_bytes: int = typer.Option(DEFAULTS.max_body_bytes, help="Body size (413 above)."),
    request_timeout: float = typer.Option(
        DEFAULTS.request_timeout_s, help="Seconds a request may wait for the model (504 after)."
    ),
    max_batch: int = typer.Option(DEFAULTS.max_batch, help="Texts per model call."),
    max_wait_ms: float = typer.Option(
        DEFAULTS.max_wait_ms, help="How long a batch waits to fill up."
    ),
    queue_size: int = typer.Option(
        DEFAULTS.queue_size, help="Requests that may wait (503 + Retry-After beyond)."
    ),
    threads: int = typer.Option(0, help="Torch threads (0: torch's default)."),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Allow browser calls from this origin (repeat). Off by default."
    ),
    log_texts: bool = typer.Option(False, "--log-texts", help="Log request texts (off: private)."),
    max_new_entities: int = typer.Option(
        DEFAULTS.max_new_entities,
        help="Entities one POST /v1/kg/triples may add (413 above): bounds its work.",
    ),
    hot_triples_dir: Path | None = typer.Option(
        None, "--hot-triples-dir", help="Where added triples persist (default BUNDLE/hot-triples)."
    ),
    kg_endpoint: str | None = typer.Option(
        None,
        "--kg-endpoint",
        help="For a bundle trained over a triple store: read it from this SPARQL endpoint URL "
        "or store folder instead (same triples).",
    ),
    ray: bool = typer.Option(
        False,
        "--ray",
        help="Serve with Ray Serve: replicas, autoscaling, clusters. Needs the 'ray' extra.",
        rich_help_panel="Ray Serve",
    ),
    replicas: int = typer.Option(
        1, "--replicas", help="Replicas, each with its own model.", rich_help_panel="Ray Serve"
    ),
    autoscale_min: int | None = typer.Option(
        None,
        "--autoscale-min",
        help="Autoscale between this and --autoscale-max replicas (replaces --replicas).",
        rich_help_panel="Ray Serve",
    ),
    autoscale_max: int | None = typer.Option(
        None, "--autoscale-max", help="Most replicas when autoscaling.", rich_help_panel="Ray Serve"
    ),
    target_ongoing_requests: float | None = typer.Option(
        None,
        "--target-ongoing-requests",
        help="Requests in flight per replica the autoscaler aims at (Ray's default: 2).",
        rich_help_panel="Ray Serve",
    ),
    replica_cpus: float = typer.Option(
        1.0,
        "--replica-cpus",
        help="CPUs Ray reserves per replica (also its OpenMP threads).",
        rich_help_panel="Ray Serve",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Join a running cluster: 'auto' (this node's) or 'ray://HEAD:10001'. "
        "Default: start a local Ray instance.",
        rich_help_panel="Ray Serve",
    ),
    ray_num_cpus: int | None = typer.Option(
        None,
        "--ray-num-cpus",
        help="CPUs of the local Ray instance (default: every core).",
        rich_help_panel="Ray Serve",
    ),
) -> None:
    """Serve a bundle over HTTP: predictions with paths, KG look-ups, a web page at /."""
    ray_options: dict[str, Any] = {
        "replicas": replicas,
        "autoscale_min": autoscale_min,
        "autoscale_max": autoscale_max,
        "target_ongoing_requests": target_ongoing_requests,
        "replica_cpus": replica_cpus,
        "address": ray_address,
        "num_cpus": ray_num_cpus,
    }
    if not ray:
        _refuse_ray_options(ray_options)

    from fusion.bundle import read_meta

    read_meta(bundle)  # a missing or broken bundle is one clear line, before the server starts
    # the key file comes through --keys-file (typer reads KGFUSE_KEYS_FILE into it)
    keys = ApiKeys.from_env({k: v for k, v in os.environ.items() if k != "KGFUSE_KEYS_FILE"})
    if keys_file is not None:
        keys = keys.merged(ApiKeys.from_file(keys_file))
    settings = ServeSettings(
        bundle=bundle,
        keys=keys,
        max_texts=max_texts,
        max_chars=max_chars,
        max_body_bytes=max_body_bytes,
        request_timeout_s=request_timeout,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_size=queue_size,
        threads=threads,
        cors_origins=tuple(cors_origin),
        log_texts=log_texts,
        max_new_entities=max_new_entities,
        hot_triples_dir=hot_triples_dir,
        kg_source=kg_endpoint,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not log_texts:
        logging.getLogger("uvicorn.access").addFilter(drop_query_strings)
    if ray:
        from api.ray_serve import serve_with_ray

        serve_with_ray(settings, RayOptions(**ray_options), host, port)
        return
    run_server(settings, host, port, log_level="info")


def run_server(settings: ServeSettings, host: str, port: int, log_level: str) -> None:
    """Load the bundle (a broken bundle or hot-triples file is one `KGFuseError`, before the
    server starts), then serve it on uvicorn until stopped."""
    import uvicorn

    from api.app import create_app
    from api.engine import Engine
    from api.http_protocol import http_protocol
    from api.metrics import Metrics

    engine = Engine.load(settings, Metrics())
    uvicorn.run(
        create_app(settings, engine),
        host=host,
        port=port,
        http=http_protocol(),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        log_level=log_level,
    )
