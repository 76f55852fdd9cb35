"""The FastAPI app factory: ``create_app(settings)``.

The lifespan loads the bundle once (off the event loop), starts the micro-batcher, and on
shutdown lets queued requests finish before stopping. Routes reach the engine through one
dependency (`api.deps.get_engine`). Docs (Swagger UI) and the web page are served from local
files: nothing is fetched from a CDN.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import UTF8_URL
from api.engine import Engine
from api.errors import error_response, install_error_handlers
from api.limits import BodyLimitMiddleware
from api.metrics import Metrics, MetricsMiddleware
from api.routes import kg, model, ops, predict
from api.settings import ServeSettings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("kgfuse.api")


def _swagger_assets() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(swagger_ui_path)


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, its refused preflight a JSON 400 naming what was refused and what the
    server allows (it was text/plain "Disallowed CORS origin")."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        message = (
            f"the cross-origin request is refused ({refused}): this server allows origins "
            f"{', '.join(self.allow_origins)}, methods {', '.join(self.allow_methods)} and "
            f"headers {', '.join(sorted(self.allow_headers))}; the operator adds an origin with "
            "--cors-origin"
        )
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access")}
        return error_response(400, "cors_refused", message, headers)


class HeadAsGet:
    """``HEAD`` answered as ``GET`` is, without the body, on every route that serves GET (HTTP
    requires it; FastAPI's GET routes answered HEAD with 405). Routes that declare HEAD
    themselves, and paths without a GET route, are left to the router."""

    def __init__(self, app: ASGIApp, routes: Callable[[], list[BaseRoute]]):
        self.app, self.routes = app, routes

    def _serves_get_only(self, scope: Scope) -> bool:
        def full(method: str) -> bool:
            probe = {**scope, "method": method}
            return any(r.matches(probe)[0] == Match.FULL for r in self.routes())

        return not full("HEAD") and full("GET")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or not self._serves_get_only(scope):
            await self.app(scope, receive, send)
            return

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["method"] = "HEAD"  # the server (and metrics) see the request as sent
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        scope["method"] = "GET"
        try:
            await self.app(scope, receive, headless)
        finally:
            scope["method"] = "HEAD"


def create_app(settings: ServeSettings, engine: Engine | None = None) -> FastAPI:
    """A service for ``settings.bundle``. Pass ``engine`` to serve one already loaded."""
    metrics = engine.metrics if engine is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = (
            engine
            if engine is not None
            else await asyncio.to_thread(Engine.load, settings, metrics)
        )
        loaded.batcher.start()
        metrics.track_engine(loaded, settings.queue_size)
        app.state.engine = loaded
        if settings.keys.reading_open:
            log.warning(
                "no read keys configured (KGFUSE_READ_KEYS, or 'read KEY' lines of --keys-file): "
                "reading is open to anyone who can connect"
            )
        log.info("serving %s (version %s)", settings.bundle, loaded.version)
        try:
            yield
        finally:
            await loaded.close(settings.shutdown_timeout_s)

    from api import __version__

    app = FastAPI(
        title="kgfuse",
        version=__version__,
        summary="Knowledge-graph-augmented text classification, explained by graph paths.",
        lifespan=lifespan,
        dependencies=[UTF8_URL],
        # a 404 naming the path without the slash, not a 307 to a URL built from the Host
        # header (http:// behind a TLS proxy; the API key would follow it in the clear)
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in (predict.router, model.router, kg.router, ops.router):
        app.include_router(router)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=_swagger_assets()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="kgfuse API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    if settings.cors_origins:
        app.add_middleware(
            JSONCORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(HeadAsGet, routes=lambda: app.router.routes)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
