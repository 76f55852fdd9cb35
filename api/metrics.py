"""Prometheus metrics of one service: requests, latencies, batch sizes, queue depth, model time.

Each app gets its own `CollectorRegistry`, so several apps (tests, benchmarks) can live in one
process. Request metrics are labelled by route template (``/v1/kg/entities/{iri}``), never by
raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


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

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.texts.inc(size)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


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
            self.metrics.requests.labels(scope["method"], template, str(status[0])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
