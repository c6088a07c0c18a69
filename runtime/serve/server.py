"""Run the service under uvicorn, and build served models from bundle directories.

uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting connections, lets requests in flight
finish (up to ``graceful_timeout_s``), then runs the lifespan shutdown, which drains the batchers.  Just
before that deadline every request still without an answer gets a 503 and its queued work is dropped
(:meth:`ServeState.begin_drain`), so no client sees a bare 500 from a cancelled task.

Connections that do not send a request's headers within ``header_timeout_s`` are closed (uvicorn's own
keep-alive timeout only covers idle connections, and is disarmed by the first byte).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from ..manifest import Manifest
from .config import ServeSettings
from .handlers import HANDLERS
from .models import ServedModel

logger = logging.getLogger(__name__)


def bundle_model(bundle: Path, *, precision: str = "auto", provider: str = "auto", threads: int | None = None,
                 batch_size: int = 8) -> ServedModel:
    """A :class:`ServedModel` for a bundle directory, named and typed by its manifest (loaded later)."""
    bundle = Path(bundle)
    manifest = Manifest.read(bundle)
    if manifest.task not in HANDLERS:
        raise InputError(f"bundle {str(bundle)!r} is a {manifest.task} model; distilrt serve answers "
                         f"{', '.join(HANDLERS)}")

    def load() -> Any:
        from .. import pipeline

        return pipeline(manifest.task, model=str(bundle), precision=precision, provider=provider,
                        batch_size=batch_size, threads=threads)

    return ServedModel(name=manifest.name, task=manifest.task, loader=load,
                       max_sequence_length=manifest.max_sequence_length, pooling=manifest.pooling)


def serve(models: Sequence[ServedModel], settings: ServeSettings, *, log_level: str = "info") -> int:
    """Serve ``models`` until SIGTERM/SIGINT; returns the process exit code (1 if a model failed to load)."""
    import uvicorn

    from .app import create_app

    failures: list[BaseException] = []
    server: uvicorn.Server | None = None

    def fatal(exc: BaseException) -> None:
        failures.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(models, settings, on_fatal=fatal)
    server = make_server(app, settings, log_level=log_level)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: reachable from other machines%s", settings.host,
                       "" if settings.api_key else " and no --api-key-env is set")
    server.run()
    return 1 if failures else 0


def make_server(app: Any, settings: ServeSettings, *, log_level: str = "info", host: str | None = None,
                port: int | None = None) -> Any:
    """A uvicorn server for ``app`` with the header timeout and the graceful-shutdown deadline."""
    import uvicorn

    graceful = max(1.0, settings.graceful_timeout_s)
    config = uvicorn.Config(app, host=host or settings.host, port=settings.port if port is None else port,
                            log_level=log_level, lifespan="on", timeout_graceful_shutdown=graceful,
                            access_log=False, server_header=False, http=_guarded_protocol(settings.header_timeout_s))

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # answer what is left a little before uvicorn cancels the tasks at its own deadline
            app.state.serve.begin_drain(graceful - min(1.0, graceful / 4))
            await super().shutdown(sockets)

    return DrainingServer(config)


def _guarded_protocol(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing connections that do not deliver a request's headers in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same time for its headers

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # headers are in; the body has its own timeout

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:
                logger.info("closing a connection that sent no complete request headers within %.1fs", header_timeout_s)
                self.transport.close()

    return HeaderTimeoutProtocol
