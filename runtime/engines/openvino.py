"""The OpenVINO engine: a bundle's ONNX files compiled for the CPU by OpenVINO.

Precisions (each names the bundle file it reads and the precision OpenVINO computes in):

- ``fp32``: ``onnx/model.onnx`` with ``INFERENCE_PRECISION_HINT=f32``.  OpenVINO's CPU plugin would
  otherwise run an fp32 graph in bf16 on AMX / AVX-512-BF16 hosts; f32 keeps fp32 parity.
- ``bf16``: the same fp32 file compiled with ``INFERENCE_PRECISION_HINT=bf16``.  Only on CPUs with
  AMX-BF16 or AVX-512-BF16 (elsewhere OpenVINO would emulate it slowly): :class:`UnsupportedPrecisionError`.
- ``int8-static``: the calibrated QDQ file; its float parts run in bf16 where the CPU has it, as
  OpenVINO does by default, else f32.  A file exported before the attention score and context MatMuls
  were kept float (its manifest does not say ``attention_products: float``) runs its float parts in f32:
  OpenVINO 2026.4 computed an int8 score MatMul wrongly for every 32-token sequence under bf16.
- ``int8``: the dynamic int8 file, where it compiles.  A graph with ``com.microsoft.QAttention`` does
  not (OpenVINO has no conversion rule for it): :class:`UnsupportedPrecisionError` names the way out.

Compiled models are cached (OpenVINO's ``CACHE_DIR``) under the user cache directory, one folder per
file SHA-256, OpenVINO version and inference precision, so the second start skips compilation.  Threads and streams are set explicitly: one
stream with a latency hint for single calls, ``streams`` streams with a throughput hint for bulk work
(each calling thread gets its own infer request, so concurrent calls run on separate streams).
The ``openvino`` package is imported only here, when the engine is built.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, InputError, MissingDependencyError, UnsupportedPrecisionError
from ..hostinfo import cpu_flags, physical_cores
from ..manifest import Manifest
from ..userdirs import cache_root
from .base import Engine, EngineInfo, check_unchanged, verify_variant

logger = logging.getLogger(__name__)

NAME = "openvino"
STATIC_INT8 = "int8-static"
#: precision -> the bundle variant whose file is compiled.
VARIANT_FOR: dict[str, str] = {"fp32": "fp32", "bf16": "fp32", STATIC_INT8: STATIC_INT8, "int8": "int8"}
PRECISIONS: tuple[str, ...] = tuple(VARIANT_FOR)
#: CPU flags under which OpenVINO computes bf16 natively.
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
HINTS: dict[str, str] = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
_TYPES = {"i64": np.int64, "i32": np.int32}

_warned_f32: set[str] = set()
_core_lock = threading.Lock()
_core: Any = None


def load_openvino() -> Any:
    """The ``openvino`` module, or :class:`MissingDependencyError` with the install command."""
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError(
            "provider 'openvino' needs the openvino package, which is not installed. Fix: "
            "pip install 'distilrt[openvino]' (or pass provider='cpu' to run on ONNX Runtime)") from exc
    return openvino


def available() -> bool:
    """Whether the openvino package can be imported here (without importing it twice)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def has_native_bf16(flags: set[str] | None = None) -> bool:
    """True on CPUs with AMX-BF16 or AVX-512-BF16 (``flags``: /proc/cpuinfo flags, read if None)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)


def core() -> Any:
    """One ``openvino.Core`` per process (it holds the loaded plugins)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = load_openvino().Core()
        return _core


def compile_config(*, precision: str, threads: int, streams: int, hint: str, cache_dir: Path | None,
                   flags: set[str] | None = None, float_attention: bool = True) -> dict[str, str]:
    """The CPU plugin properties for one compiled model (all explicit; see the module docstring).

    ``float_attention``: whether an int8-static file computes its attention products in float (else its
    float parts run in f32 whatever the CPU)."""
    if precision not in VARIANT_FOR:
        raise UnsupportedPrecisionError(
            f"precision {precision!r} cannot run on OpenVINO; it runs: {', '.join(PRECISIONS)}. "
            "Pick one of those, or pass provider='cpu' (ONNX Runtime) for fp16")
    if hint not in HINTS:
        raise InputError(f"unknown OpenVINO performance hint {hint!r}; known: {', '.join(HINTS)}")
    bf16 = has_native_bf16(flags)
    if precision == "bf16" and not bf16:
        raise UnsupportedPrecisionError(
            "precision 'bf16' needs a CPU with AMX-BF16 or AVX-512-BF16 (this one has neither); "
            "pass precision='fp32' or 'int8', or provider='auto' to let distilrt choose")
    inference = "bf16" if precision == "bf16" or (precision == STATIC_INT8 and bf16 and float_attention) else "f32"
    config = {"INFERENCE_PRECISION_HINT": inference, "PERFORMANCE_HINT": HINTS[hint],
              "NUM_STREAMS": str(streams), "INFERENCE_NUM_THREADS": str(threads)}
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return config


def attention_in_float(manifest: Manifest, variant_name: str) -> bool:
    """Whether the bundle's static int8 file computes its attention products (two activations) in float, as
    the exporter has written them since OpenVINO was found computing int8 ones wrongly (see the module
    docstring); an older bundle says nothing, and its float parts then run in f32."""
    variant = manifest.variants.get(variant_name)
    in_float = variant is not None and variant.details.get("attention_products") == "float"
    if not in_float and has_native_bf16() and manifest.name not in _warned_f32:
        _warned_f32.add(manifest.name)
        logger.warning("%s: its int8-static file predates float attention products, so OpenVINO runs its float "
                       "parts in f32 (slower than bf16) to stay correct; re-export the bundle for bf16 speed",
                       manifest.name)
    return in_float


class OpenVinoEngine(Engine):
    """A verified ONNX file compiled by OpenVINO for the CPU (``graph`` picks an extra graph of the precision)."""

    name = NAME

    def __init__(self, directory: Path, manifest: Manifest, precision: str, *, threads: int | None = None,
                 streams: int = 1, hint: str | None = None, cache: bool = True,
                 cache_dir: Path | None = None, graph: str | None = None) -> None:
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise InputError(f"streams must be a positive integer, got {streams!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be a positive integer or None (got {threads!r})")
        self.precision = precision
        self.threads = threads or physical_cores()
        self.streams = streams
        self.hint = hint or ("latency" if streams == 1 else "throughput")
        # ``graph``: the manifest key of another file of the same precision (an extra graph).
        variant_name = graph or VARIANT_FOR.get(precision, precision)
        ov = load_openvino()
        # Validate the request (precision, CPU support) before the file is hashed.
        float_attention = attention_in_float(manifest, variant_name) if precision == STATIC_INT8 else True
        config = compile_config(precision=precision, threads=self.threads, streams=streams, hint=self.hint,
                                cache_dir=None, float_attention=float_attention)
        path, identity = verify_variant(directory, manifest, variant_name)
        self.path = path
        if cache:
            sha = manifest.variant(variant_name).sha256
            # One folder per file, OpenVINO version and inference precision.  OpenVINO's own cache key
            # leaves the precision out: measured with 2026.4, a blob compiled with f32 was loaded for a
            # bf16 request of the same file and returned NaN.
            release = ov.__version__.split("-")[0]
            inference = config["INFERENCE_PRECISION_HINT"]
            folder = Path(cache_dir or cache_root() / "openvino") / f"{sha[:16]}-{release}-{inference}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(folder)
            except OSError as exc:
                logger.info("OpenVINO compiled-model cache off: cannot create %s (%s)", folder, exc)
        self.config = config
        try:
            self.compiled = core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            if "QAttention" in str(exc):
                raise UnsupportedPrecisionError(
                    f"OpenVINO cannot compile {path.name} ({precision}): its com.microsoft.QAttention operator has no "
                    "OpenVINO conversion, so this dynamic int8 file runs on ONNX Runtime only. Pass provider='cpu' "
                    "for it, or precision='int8-static' / 'bf16' for OpenVINO") from exc
            raise BundleError(f"OpenVINO cannot compile {path.name}: {str(exc).strip()[:400]}") from exc
        check_unchanged(path, identity)
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.input_dtypes = {port.get_any_name(): _TYPES.get(port.get_element_type().get_type_name(), np.int64)
                             for port in self.compiled.inputs}
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.providers = [f"OpenVINO CPU ({config['INFERENCE_PRECISION_HINT']})"]
        self.version = ov.__version__
        self._local = threading.local()
        logger.info("compiled %s (%s) with OpenVINO %s: %s", path.name, precision, self.version,
                    ", ".join(f"{k}={v}" for k, v in config.items() if k != "CACHE_DIR"))

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on this thread's infer request; outputs as float32 arrays, keyed by name."""
        request = self._request()
        request.infer({name: np.ascontiguousarray(feeds[name]) for name in self.input_names})
        # Copies: the request's output tensors are reused by its next call.
        return {name: np.array(request.get_tensor(name).data, dtype=np.float32, copy=True)
                for name in self.output_names}

    def describe(self) -> EngineInfo:
        return EngineInfo(engine=NAME, device="cpu", precision=self.precision, file=self.path.name,
                          providers=tuple(self.providers), threads=self.threads, streams=self.streams,
                          details={"openvino": self.version, "hint": self.hint,
                                   "inference_precision": self.config["INFERENCE_PRECISION_HINT"],
                                   "cache_dir": self.config.get("CACHE_DIR")})
