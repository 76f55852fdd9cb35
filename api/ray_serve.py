"""`kgfuse serve BUNDLE --ray`: the same FastAPI app, replicated by Ray Serve.

Each replica is a Ray actor that builds ``create_app(settings)`` itself (`serve.ingress` with a
builder function: the app holds locks and cannot be pickled). Ray Serve runs the app's lifespan
inside the replica's event loop before the replica takes requests (checked on Ray 2.60:
``ASGIAppReplicaWrapper`` drives uvicorn's ``LifespanOn``), so every replica loads the bundle
once and runs its own micro-batcher, exactly as under uvicorn, and drains it when it stops.
Ray's HTTP proxy routes each request to a replica; ``check_health`` reports a replica whose
engine is not loaded, and Ray replaces it.

State is per replica:

- Hot triples (``POST /v1/kg/triples``) change the graph of the one replica that answered; the
  others keep serving the old graph until they restart (they replay the persisted files on
  start). The files go to one shared folder, so add triples with a single replica, or restart the
  deployment after adding them.
- ``/metrics`` and ``/ready`` describe the replica that answered.

On a cluster, the bundle must be readable at the same path on every node that runs a replica,
and kgfuse must be installed in the cluster's Python environment. Ray is imported here only
(``pip install 'kgfuse[ray]'``): plain ``kgfuse serve`` never imports it.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from api.ray_settings import RayOptions
from api.settings import ServeSettings
from kg.errors import KGFuseError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from ray.serve import Application

APP_NAME = "kgfuse"  # the Ray Serve application and deployment name
PROBE_TIMEOUT_S = 5.0  # how long a cluster address may take to accept a TCP connection
log = logging.getLogger("kgfuse.api")


class RayServeError(KGFuseError):
    """Ray is missing, the cluster cannot be reached, or the deployment failed to start."""


def deployment_options(settings: ServeSettings, options: RayOptions) -> dict[str, Any]:
    """Keyword arguments of `serve.deployment` for one replica of ``settings``' service."""
    opts: dict[str, Any] = {
        "name": APP_NAME,
        "ray_actor_options": {"num_cpus": options.replica_cpus},
        # Ray hands a replica up to queue_size requests, so its micro-batcher sees the whole load
        # and answers 503 + Retry-After itself; the proxy refuses (503) beyond queue_size more.
        "max_ongoing_requests": settings.queue_size,
        "max_queued_requests": settings.queue_size,
        "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
    }
    if options.autoscaling:
        autoscaling: dict[str, Any] = {
            "min_replicas": options.autoscale_min,
            "max_replicas": options.autoscale_max,
        }
        optional = {
            "target_ongoing_requests": options.target_ongoing_requests,
            "upscale_delay_s": options.upscale_delay_s,
            "downscale_delay_s": options.downscale_delay_s,
        }
        autoscaling.update({k: v for k, v in optional.items() if v is not None})  # else Ray's
        opts["autoscaling_config"] = autoscaling
    else:
        opts["num_replicas"] = options.replicas
    return opts


def require_ray() -> None:
    """Raise `RayServeError` (one line, with the install command) when Ray Serve is missing."""
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as e:
        raise RayServeError(
            "Ray is not installed: pip install 'kgfuse[ray]' (or pip install 'ray[serve]>=2.9'); "
            f"importing it failed with: {e}"
        ) from None


def build_application(settings: ServeSettings, options: RayOptions) -> Application:
    """The Ray Serve application: one deployment whose replicas each run ``create_app``."""
    from ray import serve

    def build_app() -> FastAPI:  # runs on the replica: the lifespan loads the engine there
        from api.app import create_app

        return create_app(settings)

    class KGFuseReplica:
        """One replica of the service; hot triples and metrics are its own (module docstring)."""

        def check_health(self) -> None:
            """Ray calls this periodically; raising marks the replica unhealthy (restarted)."""
            app = getattr(self, "app", None)  # set by serve.ingress once the app is built
            if getattr(getattr(app, "state", None), "engine", None) is None:
                raise RuntimeError(f"the bundle {settings.bundle} is not loaded on this replica")

    ingress = serve.ingress(build_app)(KGFuseReplica)
    deployment = serve.deployment(**deployment_options(settings, options))(ingress)
    return deployment.bind()


def not_running(address: str, reason: str) -> RayServeError:
    return RayServeError(
        f"no Ray cluster answers at --ray-address {address} ({reason}). Start one with "
        "`ray start --head` and pass --ray-address auto (on its head node) or "
        "ray://HEAD:10001, or leave out --ray-address to start a local Ray instance"
    )


def probe(address: str) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` / ``ray://HOST:PORT`` (Ray itself waits
    30 s for a ``ray://`` address and retries a plain one for minutes)."""
    if address == "auto":
        return  # Ray answers at once when no cluster is running
    split = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = split.hostname, split.port
    except ValueError as e:  # a port that is not a number
        raise not_running(address, str(e)) from None
    if not host or port is None:
        raise not_running(address, "expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        raise not_running(address, e.strerror or type(e).__name__) from None


def connect(options: RayOptions) -> None:
    """Start a local Ray instance, or join the cluster at ``options.address``."""
    import ray

    if options.address is None:
        ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=False)
        return
    probe(options.address)
    try:
        ray.init(address=options.address)
    except ConnectionError as e:
        raise not_running(options.address, str(e).split(". ")[0]) from None


def check_port_free(host: str, port: int) -> None:
    """Ray's proxy fails with a remote traceback on a taken port: check before starting Ray."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError as e:
            raise RayServeError(
                f"cannot listen on {host}:{port} ({e.strerror}): choose another --port"
            ) from None


def deploy(settings: ServeSettings, options: RayOptions, host: str, port: int) -> None:
    """Run the application on the connected cluster; returns once every replica is ready."""
    from ray import serve

    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_application(settings, options), name=APP_NAME, route_prefix="/")
    except RuntimeError as e:  # the proxy or the replicas failed: a Ray task error's cause
        cause = getattr(e, "cause", None) or e  # names the problem without the remote trace
        raise RayServeError(f"Ray Serve could not start kgfuse on port {port}: {cause}") from None


def replica_states() -> dict[str, int]:
    """The kgfuse deployment's replicas by state (``RUNNING``, ``STARTING``, ``STOPPING``, ...),
    from `serve.status()` of the connected cluster; empty while it is not deployed."""
    from ray import serve

    application = serve.status().applications.get(APP_NAME)
    deployment = application.deployments.get(APP_NAME) if application else None
    if deployment is None:
        return {}
    return {str(getattr(s, "value", s)): int(n) for s, n in deployment.replica_states.items()}


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve_with_ray(settings: ServeSettings, options: RayOptions, host: str, port: int) -> None:
    """`kgfuse serve --ray`: deploy, serve until Ctrl-C or SIGTERM, then take it all down."""
    require_ray()
    import ray
    from ray import serve

    if options.address is None:
        check_port_free(host, port)
    connect(options)
    try:
        deploy(settings, options, host, port)
        replicas = (
            f"{options.autoscale_min}-{options.autoscale_max} replicas (autoscaling)"
            if options.autoscaling
            else f"{options.replicas} replica(s)"
        )
        log.info(
            "serving %s on Ray Serve at http://%s:%d, %s", settings.bundle, host, port, replicas
        )
        # a second driver (`ray.init(address=...)`, then `serve.status()`) can watch the replicas
        log.info("Ray cluster address: %s", ray.get_runtime_context().gcs_address)
        signal.signal(signal.SIGTERM, _stop)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        log.info("stopping: replicas finish their queued requests first")
    finally:
        if options.address is None:
            serve.shutdown()  # the local instance goes away with ray.shutdown
        else:
            serve.delete(APP_NAME)  # leave the cluster (and other apps on it) running
        ray.shutdown()
