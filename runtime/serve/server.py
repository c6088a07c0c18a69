"""Run the service under uvicorn, and build served models from bundle directories.

uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting connections, lets requests in flight
finish (up to ``graceful_timeout_s``), then runs the lifespan shutdown, which drains the batchers.
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
                       max_sequence_length=manifest.max_sequence_length, bundle=bundle, pooling=manifest.pooling)


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
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=max(1, round(settings.graceful_timeout_s)), access_log=False,
                            server_header=False)
    server = uvicorn.Server(config)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: reachable from other machines%s", settings.host,
                       "" if settings.api_key else " and no --api-key-env is set")
    server.run()
    return 1 if failures else 0
