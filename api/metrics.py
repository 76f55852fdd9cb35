"""Prometheus metrics of one service: requests, latencies, batch sizes, queue depth and size,
model time, whether the model is loaded, and the fingerprint of the KG it serves.

Each app gets its own `CollectorRegistry`, so several apps (tests, benchmarks) can live in one
process. Request metrics are labelled by route template (``/v1/kg/entities/{iri}``), never by
raw path, so label cardinality stays bounded. The alert rules in ``deploy/prometheus/alerts.yml``
and the dashboard in ``deploy/grafana/kgfuse.json`` use these names (``tests/test_alerts.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # the engine imports this module
    from api.engine import Engine

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _EngineCollector(Collector):
    """Read at each scrape: the model is loaded, and the fingerprint of the KG it serves now
    (hot triples change it), as an info-style gauge whose one series carries it as a label."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        loaded = engine is not None and not engine.batcher.closing
        yield GaugeMetricFamily(
            "kgfuse_model_loaded",
            "1 when the model is loaded and requests are taken (/ready answers 200), else 0",
            value=float(loaded),
        )
        info = GaugeMetricFamily(
            "kgfuse_kg_info", "The KG served, by fingerprint (always 1)", labels=("fingerprint",)
        )
        if engine is not None:
            info.add_metric((engine.graph.fingerprint,), 1.0)
        yield info


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kgfuse_requests",
            "HTTP requests answered",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kgfuse_request_seconds",
            "Time to answer an HTTP request",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "kgfuse_batch_size",
            "Texts per model call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "kgfuse_model_seconds",
            "Time of one model call (linking, model, explanations)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "kgfuse_queue_depth", "Requests waiting for the model", registry=self.registry
        )
        self.texts = Counter("kgfuse_texts", "Texts predicted", registry=self.registry)
        self.rejected = Counter(
            "kgfuse_rejected",
            "Requests refused before the model ran",
            ("reason",),
            registry=self.registry,
        )
        self.queue_size = Gauge(
            "kgfuse_queue_size",
            "The most requests that may wait (--queue-size)",
            registry=self.registry,
        )
        self._engine = _EngineCollector()
        self.registry.register(self._engine)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.texts.inc(size)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def track_engine(self, engine: Engine, queue_size: int) -> None:
        """Report ``engine``'s queue, readiness and KG from now on (called once it is loaded)."""
        self.track_queue(lambda: engine.batcher.depth)
        self.queue_size.set(queue_size)
        self._engine.engine = engine

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# Methods counted by name; any other (a client may send any token) is "other", so junk methods
# cannot add a label series each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
