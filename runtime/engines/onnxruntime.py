"""The ONNX Runtime engine (CPU, CUDA, TensorRT): the one place distilrt builds ``SessionOptions``.

Everything that opens an ONNX file with ONNX Runtime — the runtime, the exporter's validation and
graph timing, the benchmarks — builds its options with :func:`session_options` and its sessions with
:func:`create_session`, so a session setting measured faster is applied everywhere at once.
Provider lists and TensorRT options come from :mod:`distilrt.runtime.providers`.

``InferenceSession.run`` is thread-safe, so one :class:`OrtEngine` serves every thread.  The only
per-call state (IO binding objects and reused device buffers) is thread-local.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cache import OptimizedModelCache
from ..errors import BundleError, DistilrtError, InputError
from ..hostinfo import physical_cores
from ..manifest import Manifest
from ..providers import PROVIDERS, ProviderPlan, check_session_providers, session_failure
from ..validation import check_threads
from .base import Engine, EngineInfo, check_unchanged, verify_variant

logger = logging.getLogger(__name__)

NAME = "onnxruntime"
OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")
_ORT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
#: Device buffers kept per thread for IO binding (one per input name and shape).
_MAX_BOUND_BUFFERS = 64
#: ONNX Runtime graph rewrites left out on the CPU provider.  ``SkipLayerNormFusion`` folds each
#: residual Add + LayerNormalization into one SkipLayerNormalization kernel, which is slower on CPU than
#: the two ops it replaces: on full-size DistilBERT-QA int8 (ORT 1.32, 2 threads, Xeon with AMX) leaving
#: it out took a session from 14.6 to 12.9 ms at 1x128, 45.7 to 41.4 ms at 1x384 and 96.9 to 77.3 ms at
#: 8x128; fp32 gained 1-3%.  GPU providers keep it (their fused kernel is the fast one).
CPU_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


@dataclass(frozen=True)
class SessionSettings:
    """How a session is built (everything except which file and which provider)."""

    threads: int | None = None  # intra-op threads; None = physical cores
    optimization: str = "all"  # ORT graph optimisation level
    optimized_cache: bool = False  # save / reuse the optimised graph next to the bundle (see cache.py)
    cache_dir: Path | None = None  # default: <bundle>/.cache
    io_binding: bool | None = None  # None = on for GPU providers
    # ONNX Runtime optimizers to leave out, by name; None = :data:`CPU_DISABLED_OPTIMIZERS` on the CPU
    # provider and nothing on GPU providers.
    disabled_optimizers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise InputError(f"unknown graph optimisation level {self.optimization!r}; known: {', '.join(OPTIMIZATION_LEVELS)}")
        check_threads(self.threads)
        if self.disabled_optimizers is not None and (
                isinstance(self.disabled_optimizers, str)
                or not all(isinstance(name, str) and name for name in self.disabled_optimizers)):
            raise InputError("disabled_optimizers must be a tuple of ONNX Runtime optimizer names, e.g. "
                             f"('SkipLayerNormFusion',) (got {self.disabled_optimizers!r})")

    def optimizers_to_disable(self, device: str) -> tuple[str, ...]:
        """The optimizer names left out for a provider on ``device`` ("cpu", "cuda", ...)."""
        if self.disabled_optimizers is not None:
            return tuple(self.disabled_optimizers)
        return CPU_DISABLED_OPTIMIZERS if device == "cpu" else ()


def session_options(settings: SessionSettings = SessionSettings(), *, optimization: str | None = None) -> Any:
    """``onnxruntime.SessionOptions`` for ``settings`` (``optimization`` overrides its level)."""
    import onnxruntime as ort

    level = optimization or settings.optimization
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads or physical_cores()
    options.inter_op_num_threads = 1  # encoder graphs are one chain; parallelism is within operators
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.log_severity_level = 3
    return options


def create_session(model: str | Path | bytes, settings: SessionSettings = SessionSettings(), *,
                   plan: ProviderPlan | None = None, options: Any = None, printed: list[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` built as distilrt's runtime builds it.

    ``plan`` None means the CPU provider alone.  ``options`` (default: :func:`session_options` of
    ``settings``) lets a caller add to the options, e.g. a profiling flag.  The runtime's left-out
    rewrites (:meth:`SessionSettings.optimizers_to_disable`) apply for the plan's device, and the
    plan's session configuration (GPU sessions: no spinning intra-op threads) is added to the options.

    ONNX Runtime's silent provider fallback is off (``enable_fallback=0``): a GPU provider that fails
    to build the session raises :class:`ProviderUnavailableError` with onnxruntime's own message (e.g.
    TensorRT refusing a graph).  Releases that ignore ``enable_fallback`` print that message and retry
    on CUDA/CPU; it is captured into ``printed`` for :func:`check_session_providers` to name the cause.
    """
    import onnxruntime as ort

    plan = plan if plan is not None else ProviderPlan("cpu", "cpu", ((PROVIDERS["cpu"], {}),))
    disabled = list(settings.optimizers_to_disable(plan.device))
    options = options if options is not None else session_options(settings)
    for key, value in plan.session_config.items():
        options.add_session_config_entry(key, value)
    kwargs: dict[str, Any] = {"providers": plan.names, "provider_options": plan.options,
                              "disabled_optimizers": disabled or None, "enable_fallback": 0}
    source = model if isinstance(model, bytes) else str(model)
    if plan.device == "cpu":
        return ort.InferenceSession(source, options, **kwargs)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            session = ort.InferenceSession(source, options, **kwargs)
    except Exception as exc:  # onnxruntime raises its own RuntimeError subclasses
        raise session_failure(plan, exc) from exc
    text = captured.getvalue().strip()
    if text:
        logger.warning("onnxruntime while building the %s session: %s", plan.primary, text)
        if printed is not None:
            printed.append(text)
    return session


class OrtEngine(Engine):
    """A verified ONNX model in an ONNX Runtime session, with the feeds it declares."""

    name = NAME

    def __init__(self, directory: Path, manifest: Manifest, precision: str, plan: ProviderPlan,
                 settings: SessionSettings = SessionSettings(), *, file_precision: str | None = None) -> None:
        self.precision = precision
        file_precision = file_precision or precision
        path, identity = verify_variant(directory, manifest, file_precision)
        self.path = path
        self.settings = settings
        variant = manifest.variant(file_precision)
        cache = None
        if settings.optimized_cache and settings.optimization != "disabled" and plan.name != "tensorrt":
            cache = OptimizedModelCache.for_variant(directory, variant.file, variant.sha256, provider=plan.name,
                                                    level=settings.optimization, cache_dir=settings.cache_dir,
                                                    disabled=settings.optimizers_to_disable(plan.device))
        printed: list[str] = []
        self.session, self.from_cache = self._build(path, plan, settings, cache, printed)
        check_unchanged(path, identity)
        self.plan = check_session_providers(plan, self.session.get_providers(), cause=" ".join(printed))
        self.providers: list[str] = list(self.session.get_providers())
        self.input_names: list[str] = [i.name for i in self.session.get_inputs()]
        self.input_dtypes = {i.name: _ORT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.io_binding = settings.io_binding if settings.io_binding is not None else self.plan.device != "cpu"
        self._local = threading.local()
        logger.info("loaded %s (%s) on %s%s", path.name, precision, ", ".join(self.providers),
                    " from the optimised-model cache" if self.from_cache else "")

    @staticmethod
    def _build(path: Path, plan: ProviderPlan, settings: SessionSettings,
               cache: OptimizedModelCache | None, printed: list[str]) -> tuple[Any, bool]:
        if cache is not None:
            cached = cache.load()
            if cached is not None:
                try:
                    # The cached graph is already optimised.  "basic" rather than "disabled": measured on
                    # ORT 1.31, a session with every optimisation disabled takes twice as long to build.
                    return create_session(cached, settings, plan=plan, printed=printed,
                                          options=session_options(settings, optimization="basic")), True
                except Exception as exc:  # ORT raises its own exception types
                    logger.warning("could not load the optimised-model cache %s (%s); rebuilding it", cache.path, exc)
                    cache.discard()
        options = session_options(settings)
        staged = cache.staging_path() if cache is not None else None
        if staged is not None:
            options.optimized_model_filepath = str(staged)
        try:
            session = create_session(path, settings, plan=plan, options=options, printed=printed)
        except Exception as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)
            if isinstance(exc, DistilrtError):  # a GPU provider that refused the session says why itself
                raise
            raise BundleError(f"onnxruntime cannot load the model: {exc}") from exc
        if staged is not None and cache is not None:
            cache.commit(staged)
        return session, False

    def describe(self) -> EngineInfo:
        return EngineInfo(engine=NAME, device=self.plan.device, precision=self.precision, file=self.path.name,
                          providers=tuple(self.providers), threads=self.settings.threads or physical_cores(),
                          details={"optimization": self.settings.optimization, "io_binding": self.io_binding,
                                   "from_cache": self.from_cache,
                                   "disabled_optimizers": list(self.settings.optimizers_to_disable(self.plan.device))})

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; every output comes back as a float32 numpy array, keyed by name."""
        if self.io_binding:
            values = self._run_bound(feeds)
        else:
            values = self.session.run(self.output_names, feeds)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, values)}

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Run with inputs and outputs bound on the provider's device; input buffers are reused per shape."""
        import onnxruntime as ort

        device, device_id = self.plan.device, self.plan.device_id
        buffers: dict[tuple[str, tuple[int, ...], str], Any] = getattr(self._local, "buffers", None) or {}
        self._local.buffers = buffers
        binding = self.session.io_binding()
        for name, array in feeds.items():
            array = np.ascontiguousarray(array)
            key = (name, array.shape, array.dtype.str)
            value = buffers.get(key)
            if value is None:
                if len(buffers) >= _MAX_BOUND_BUFFERS:
                    buffers.clear()
                # A CPU OrtValue shares the numpy array's memory: give it its own copy to overwrite later.
                value = ort.OrtValue.ortvalue_from_numpy(array.copy(), device, device_id)
                buffers[key] = value
            else:
                value.update_inplace(array)
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, device, device_id)
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding.copy_outputs_to_cpu()
