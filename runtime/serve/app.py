"""The ASGI application: lifespan (load, warm up, drain), middleware (auth, metrics), error rendering.

``create_app(models, settings)`` is the whole service; ``distilrt serve`` builds the models from bundle
directories and runs this app under uvicorn.  Tests build it from stand-in pipelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..validation import short
from .config import ServeSettings
from .errors import ServeHTTPError, error_body
from .metrics import CONTENT_TYPE, ServeMetrics
from .models import ServedModel

logger = logging.getLogger(__name__)

#: routes anyone may call (probes); everything else needs the bearer token when one is configured
OPEN_PATHS = frozenset({"/health", "/ready"})


@dataclass
class ServeState:
    """Everything the routes need, hung on ``app.state.serve``."""

    models: dict[str, ServedModel]
    settings: ServeSettings
    metrics: ServeMetrics
    started: float = field(default_factory=time.time)
    on_fatal: Callable[[BaseException], None] | None = None

    def model(self, name: str) -> ServedModel:
        """The served model called ``name``: 404 if there is none, 503 while it loads or if it failed."""
        model = self.models.get(name)
        if model is None:
            raise ServeHTTPError(404, f"model {short(name)} is not served here; served models: "
                                      f"{', '.join(sorted(self.models)) or 'none'}", code="model_not_found")
        if model.load_error is not None:
            raise ServeHTTPError(503, f"model {name!r} failed to load: {model.load_error}", code="model_failed")
        if not model.ready:
            raise ServeHTTPError(503, f"model {name!r} is still loading; retry shortly", code="model_loading",
                                 headers={"Retry-After": str(self.settings.retry_after_s)})
        return model

    def begin_drain(self, seconds: float) -> None:
        """Shutdown has begun: whatever has no answer after ``seconds`` gets a 503 and is not run."""
        def expire() -> None:
            count = 0
            for model in self.models.values():
                if hasattr(model.batcher, "expire"):  # a batcher of another runtime (Ray) drains on its own
                    count += model.batcher.expire(lambda: ServeHTTPError(
                        503, "the server is shutting down and this request did not finish within the graceful "
                             f"shutdown time ({self.settings.graceful_timeout_s:g}s, --graceful-timeout); retry it",
                        code="shutting_down", headers={"Retry-After": str(self.settings.retry_after_s)}))
            if count:
                logger.warning("graceful shutdown deadline: answered %d unfinished requests with 503", count)

        asyncio.get_running_loop().call_later(max(0.0, seconds), expire)

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())


def route_label(path: str) -> str:
    """A bounded route label for metrics (never the raw path, which a client controls)."""
    if path.startswith("/models/"):
        return "/models/{name}"
    if path in ("/v1/embeddings", "/v1/models", "/health", "/ready", "/metrics"):
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return "other"


class MetricsMiddleware:
    """Counts every HTTP request by route, model and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        route = route_label(scope["path"])
        self.metrics.in_flight.add(1, route=route)
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.in_flight.add(-1, route=route)
            self.metrics.observe_request(route=route, model=str(state.get("distilrt_model", "")),
                                         status=status, seconds=time.perf_counter() - started)


class BearerAuthMiddleware:
    """401 unless ``Authorization: Bearer <key>`` matches (constant-time compare); probes stay open."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            header = b""
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    header = value
                    break
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                message = ("missing bearer token; send the header 'Authorization: Bearer <key>'" if not header
                           else "invalid bearer token")
                exc = ServeHTTPError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                response = JSONResponse(error_body(scope["path"], exc), status_code=401, headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _load_all(state: ServeState) -> None:
    """Load and warm up each model in turn, off the event loop; a failure is fatal to the server."""
    for model in state.models.values():
        try:
            await asyncio.to_thread(model.load)
        except Exception as exc:  # reported on /ready and handed to on_fatal
            model.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("cannot load model %r: %s", model.name, model.load_error)
            if state.on_fatal is not None:
                state.on_fatal(exc)
            return
        state.metrics.ready.set(1, model=model.name)
    logger.info("all %d models ready", len(state.models))


def create_app(models: Sequence[ServedModel], settings: ServeSettings | None = None, *,
               on_fatal: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The service for ``models`` (each answered under its own name)."""
    settings = settings or ServeSettings()
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two bundles share the name(s) {duplicates}; serve each name once")
    metrics = ServeMetrics()
    state = ServeState({m.name: m for m in models}, settings, metrics, on_fatal=on_fatal)
    for model in models:
        model.metrics = metrics
        metrics.ready.set(1 if model.ready else 0, model=model.name)
        metrics.queue_depth.set(0, model=model.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model in state.models.values():
            model.make_batcher(max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                               max_queue=settings.max_queue, max_batch_tokens=settings.batch_tokens,
                               large_request_tokens=settings.large_request_tokens).start()
        loader = asyncio.get_running_loop().create_task(_load_all(state), name="distilrt-load-models")
        try:
            yield
        finally:
            if not loader.done():
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
            # uvicorn has already waited for in-flight requests; drain whatever is still queued
            for model in state.models.values():
                if model.batcher is not None:
                    await model.batcher.close()
            logger.info("batchers drained; shutting down")

    app = FastAPI(title="distilrt", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state

    @app.exception_handler(ServeHTTPError)
    async def _serve_error(request: Request, exc: ServeHTTPError) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        wrapped = ServeHTTPError(exc.status_code, f"{request.method} {short(request.url.path)}: {exc.detail}")
        return JSONResponse(error_body(request.url.path, wrapped), status_code=exc.status_code,
                            headers=dict(exc.headers or {}))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: every model loaded and warmed up."""
        per_model = {name: ("ready" if m.ready else "failed" if m.load_error else "loading")
                     for name, m in state.models.items()}
        status = "ready" if state.ready else "failed" if any(m.load_error for m in state.models.values()) else "loading"
        return JSONResponse({"status": status, "models": per_model}, status_code=200 if state.ready else 503)

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        """The request shapes and limits of every served model, for clients and schema-driven fuzzers."""
        from .openapi import openapi_document

        return JSONResponse(openapi_document(state))

    @app.get("/metrics")
    async def metrics_route() -> Response:
        for model in state.models.values():
            if model.batcher is not None:
                metrics.queue_depth.set(model.batcher.depth, model=model.name)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    from .routes import register_routes

    register_routes(app, state)
    if settings.api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=settings.api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
