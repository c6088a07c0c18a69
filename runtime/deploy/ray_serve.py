"""``distilrt deploy ray``: bundles as a Ray Serve application with ``distilrt serve``'s HTTP API.

Each replica is ``distilrt serve``'s own ASGI app (:func:`distilrt.runtime.serve.app.create_app`: the
Hugging Face Inference API routes, OpenAI embeddings, /health, /ready, /metrics, error bodies) over every
bundle, with one change: requests for a model are batched by Ray's ``@serve.batch`` instead of serve's
micro-batcher.  ``max_batch_size`` therefore counts requests (Ray's unit), not inputs.

In a Serve config file::

    applications:
      - name: distilrt
        route_prefix: /
        import_path: distilrt.runtime.deploy.ray_serve:build_app
        args: {bundles: [/models/qa, /models/minilm], replicas: 2, max_batch_size: 16}

Ray is imported inside the functions, so importing this module costs nothing without the ``ray`` extra.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, MissingDependencyError
from ..serve.batching import Job, QueueFullError
from ..serve.config import ServeSettings
from ..serve.models import ServedModel

logger = logging.getLogger(__name__)

APP_NAME = "distilrt"


@dataclass(frozen=True)
class RayOptions:
    """Replicas, their resources and batching (what ``distilrt deploy ray`` flags set)."""

    replicas: int = 1
    max_batch_size: int = 32
    batch_wait_timeout_s: float = 0.005
    num_cpus: float | None = None  # per replica; default: this machine's cores / replicas
    num_gpus: float = 0.0
    threads: int | None = None  # ONNX Runtime intra-op threads per replica; default: num_cpus
    precision: str = "auto"
    provider: str = "cpu"
    max_ongoing_requests: int | None = None  # per replica; default: 4 x max_batch_size
    max_queue: int = 256  # waiting requests per model and replica before 503
    pipeline_batch_size: int = 8

    def __post_init__(self) -> None:
        for name in ("replicas", "max_batch_size", "max_queue", "pipeline_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if self.batch_wait_timeout_s < 0:
            raise InputError(f"batch_wait_timeout_s must be >= 0, got {self.batch_wait_timeout_s}")
        if self.num_cpus is not None and self.num_cpus <= 0:
            raise InputError(f"num_cpus must be > 0, got {self.num_cpus}")

    @property
    def cpus_per_replica(self) -> float:
        if self.num_cpus is not None:
            return self.num_cpus
        return max(1.0, float((os.cpu_count() or 1) // self.replicas))

    @property
    def threads_per_replica(self) -> int:
        """Intra-op threads: as set, else the replica's CPUs, so replicas do not oversubscribe the cores."""
        return self.threads or max(1, int(self.cpus_per_replica))

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> "RayOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known - {"bundles"})
        if unknown:
            raise InputError(f"unknown application args {unknown}; known: bundles, {', '.join(sorted(known))}")
        kinds = {"replicas": int, "max_batch_size": int, "max_queue": int, "pipeline_batch_size": int,
                 "threads": int, "max_ongoing_requests": int, "batch_wait_timeout_s": float, "num_cpus": float,
                 "num_gpus": float, "precision": str, "provider": str}
        return cls(**{k: (None if v is None else kinds[k](v)) for k, v in args.items() if k in known})


class RayBatcher:
    """Takes the place of serve's micro-batcher: each request goes through a ``@serve.batch`` function."""

    def __init__(self, model: ServedModel, *, max_batch_size: int, batch_wait_timeout_s: float,
                 max_queue: int) -> None:
        from ray import serve

        self.model = model
        self.max_queue = max_queue
        self._waiting = 0

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def run(jobs: list[Job]) -> list[tuple[Any]]:
            # one batch at a time per model (Ray's default); the model runs off the event loop
            results = await asyncio.to_thread(model.run_batch, jobs)
            return [(r,) for r in results]  # wrapped: a request's own error is returned, not raised for all

        self._run = run

    @property
    def depth(self) -> int:
        return self._waiting

    def start(self) -> None:
        """Nothing to start: Ray runs the batch loop."""

    async def submit(self, job: Job) -> Any:
        if self._waiting >= self.max_queue:
            raise QueueFullError(f"model {self.model.name!r} has {self._waiting} requests waiting on this replica "
                                 f"(limit {self.max_queue})")
        self._waiting += 1
        try:
            (result,) = await self._run(job)
        finally:
            self._waiting -= 1
        if isinstance(result, BaseException):
            raise result
        return result

    async def close(self) -> None:
        """Ray drains the replica; nothing is queued here beyond Ray's own batch queue."""

    def expire(self, error: Any) -> int:
        """Serve's graceful-shutdown deadline: Ray drains replicas itself, so nothing is expired here."""
        return 0


@dataclass
class RayServedModel(ServedModel):
    """A served model whose requests are batched by Ray; loaded once, in the replica's constructor."""

    ray_batching: dict[str, Any] = field(default_factory=dict)

    def load(self) -> None:
        if not self.ready:
            super().load()

    def make_batcher(self, *, max_queue: int, **_serve_batching: Any) -> Any:
        """Ray's batcher in place of serve's; serve's own batching options (wait, token budget) do not apply."""
        self.batcher = RayBatcher(self, max_queue=max_queue, **self.ray_batching)
        return self.batcher


def replica_models(bundles: Sequence[str], options: RayOptions) -> list[RayServedModel]:
    from ..serve.server import bundle_model

    models = []
    for bundle in bundles:
        base = bundle_model(Path(bundle), precision=options.precision, provider=options.provider,
                            threads=options.threads_per_replica, batch_size=options.pipeline_batch_size)
        values = {f.name: getattr(base, f.name) for f in fields(ServedModel)}
        models.append(RayServedModel(**values, ray_batching={"max_batch_size": options.max_batch_size,
                                                             "batch_wait_timeout_s": options.batch_wait_timeout_s}))
    return models


def deployment_class(options: RayOptions) -> Any:
    """The Ray Serve deployment: one replica = every bundle loaded, behind distilrt serve's ASGI app."""
    from ray import serve

    @serve.deployment(
        name="DistilrtServe", num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": options.num_gpus},
        max_ongoing_requests=options.max_ongoing_requests or 4 * options.max_batch_size,
        health_check_period_s=2, health_check_timeout_s=30,
    )
    @serve.ingress()
    class DistilrtServe:
        def __init__(self, bundles: list[str], options_dict: dict[str, Any]) -> None:
            opts = RayOptions(**options_dict)
            self.models = replica_models(bundles, opts)
            for model in self.models:  # before the replica reports ready, so Ray routes only to loaded replicas
                model.load()
            self.settings = ServeSettings(max_batch_size=opts.max_batch_size, max_queue=opts.max_queue)

        def __serve_build_asgi_app__(self) -> Any:
            from ..serve.app import create_app

            return create_app(self.models, self.settings)

        def check_health(self) -> None:
            failed = [m.name for m in self.models if not m.ready]
            if failed:
                raise RuntimeError(f"models not loaded: {failed}")

    return DistilrtServe


def build_application(bundles: Sequence[str | Path], options: RayOptions | None = None) -> Any:
    """A bound Ray Serve application serving ``bundles`` (pass it to ``serve.run``)."""
    options = options or RayOptions()
    if not bundles:
        raise InputError("name at least one bundle directory to deploy")
    paths = [str(Path(b).resolve()) for b in bundles]
    replica_models(paths, options)  # reads every manifest now: a bad bundle fails here, not in a replica
    return deployment_class(options).bind(paths, asdict(options))


def build_app(args: dict[str, Any]) -> Any:
    """Application builder for ``serve run`` / Serve config files: ``args`` holds ``bundles`` and options."""
    bundles = args.get("bundles")
    if isinstance(bundles, str):
        bundles = [b for b in bundles.split(",") if b]
    if not bundles:
        raise InputError("application args need bundles: a list of bundle directories")
    return build_application(bundles, RayOptions.from_args(dict(args)))


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"distilrt deploy ray needs Ray Serve ({exc.name}); install it with: "
                                     "pip install 'distilrt[ray]'") from exc


def start_ray(bundles: Sequence[str | Path], options: RayOptions, *, host: str = "127.0.0.1", port: int = 8000,
              address: str | None = None, num_cpus: int | None = None) -> Any:
    """Start (or join) Ray, start Serve's HTTP proxy on host:port and deploy; returns the app handle."""
    _require_ray()
    import ray
    from ray import serve

    app = build_application(bundles, options)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            # a local instance on a loopback address keeps Ray's own traffic on this machine too
            local = {"_node_ip_address": "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {}
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, **local)
    serve.start(http_options={"host": host, "port": port})
    return serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def run_ray(bundles: Sequence[str], options: RayOptions, *, host: str, port: int, address: str | None) -> int:
    """``distilrt deploy ray``: deploy, serve until SIGINT/SIGTERM, shut Serve down."""
    _require_ray()
    import ray
    from ray import serve

    start_ray(bundles, options, host=host, port=port, address=address)
    print(f"Ray Serve: http://{host}:{port}/models/<name> and /v1/embeddings; {options.replicas} replica(s); "
          "Ctrl-C stops", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    if not address:
        ray.shutdown()
    return 0
