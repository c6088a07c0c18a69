"""TensorRT through ONNX Runtime: which graph it is given, its options, shape profile and engine cache.

The one place that knows TensorRT; the runtime and the benchmarks both call it.

Graph.  TensorRT's ONNX parser takes standard ONNX operators only.  A graph with ONNX Runtime's fused
``com.microsoft`` operators (Attention, SkipLayerNormalization, ...) is split into TensorRT sub-graphs
whose inputs are intermediate tensors; those have no shape profile, and ONNX Runtime's TensorRT provider
then refuses the session.  Dynamic int8 (``MatMulInteger``, ``DynamicQuantizeLinear``) is not parsed
either.  So TensorRT gets, of the bundle's graphs of the requested precision, the first one made only of
standard operators, and for int8 one with QuantizeLinear/DequantizeLinear (static QDQ); when none
exists, :class:`~distilrt.runtime.errors.GraphUnsupportedError` names each graph's problem.

Precision is in the graph.  TensorRT 10.1 deprecated and TensorRT 11 removed implicit (calibrated)
int8 and the FP16/INT8 builder flags: TensorRT 11 builds strongly typed networks, where each layer
runs in the type its ONNX tensors have.  So fp16 uses the bundle's fp16 graph (fp16 weights and
compute, LayerNorm kept in fp32 by the graph's own Casts) and int8 the static QDQ graph.  On TensorRT
10 ``trt_fp16_enable`` / ``trt_int8_enable`` are set as well (weakly typed networks need the flags to
pick fp16 / int8 kernels), with ``trt_layer_norm_fp32_fallback`` so that fp16 never reaches the
LayerNorm reductions; no calibration table is given (QDQ graphs must not have one).

Profile.  One min/opt/max profile covers every (batch, length) the runtime feeds: batches up to
``max(32, batch_size rounded up to a power of two)``, lengths up to the bundle's maximum, tuned for
1x128.  It does not follow ``batch_size`` below 32, so the CLI (32) and the server (8) build and share
the same engine instead of rebuilding each other's.

Engine cache.  ONNX Runtime names an engine from the model's file name and node names, not its
weights: two bundles (or a re-export) would load each other's engines.  Each engine directory is
therefore keyed by the graph's SHA-256, the precision and the profile, under the user cache directory
(``$DISTILRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/distilrt``, else ``~/.cache/distilrt``), and created
here: the provider itself creates only the last folder of the path, and a bundle may be read-only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import CacheDirError, GraphUnsupportedError, InputError
from .graphinfo import graph_ops, nonstandard_ops
from .manifest import Manifest
from .userdirs import cache_root

logger = logging.getLogger(__name__)

#: Where TensorRT tunes its kernels: one latency-bound request of typical length.
DEFAULT_OPT: tuple[int, int] = (1, 128)
#: The profile's largest batch is at least this, so that common batch sizes share one engine.
PROFILE_MIN_MAX_BATCH = 32
#: Standard ONNX operators of dynamic int8 graphs that TensorRT's parser does not take.
UNPARSED_OPS: frozenset[str] = frozenset({"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear",
                                          "QLinearMatMul", "QLinearConv"})
#: What ``precision="auto"`` tries on TensorRT, best first (int8 only when asked for: it is approximate).
AUTO_PRECISIONS: tuple[str, ...] = ("fp16", "fp32")


@dataclass(frozen=True)
class TensorrtProfile:
    """One TensorRT optimisation profile: smallest, tuned-for and largest (batch, length)."""

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]

    @classmethod
    def covering(cls, *, max_length: int, batch_size: int, opt: tuple[int, int] = DEFAULT_OPT) -> "TensorrtProfile":
        """The profile for a runtime that feeds batches of up to ``batch_size`` and lengths up to ``max_length``."""
        if batch_size < 1 or max_length < 1:
            raise InputError(f"batch_size and max_length must be >= 1 (got {batch_size}, {max_length})")
        max_batch = max(PROFILE_MIN_MAX_BATCH, 1 << (batch_size - 1).bit_length())
        return cls((1, 1), (min(opt[0], max_batch), min(opt[1], max_length)), (max_batch, max_length))

    def holds(self, batch: int, length: int) -> bool:
        return self.min[0] <= batch <= self.max[0] and self.min[1] <= length <= self.max[1]

    @property
    def key(self) -> str:
        return "-".join(f"{b}x{s}" for b, s in (self.min, self.opt, self.max))

    def options(self, input_names: Sequence[str]) -> dict[str, str]:
        """``trt_profile_{min,opt,max}_shapes`` naming every graph input, e.g. ``input_ids:1x1,attention_mask:1x1``."""
        if not input_names:
            raise InputError("a TensorRT profile needs the graph's input names (got none)")

        def shapes(batch: int, length: int) -> str:
            return ",".join(f"{name}:{batch}x{length}" for name in input_names)

        return {"trt_profile_min_shapes": shapes(*self.min), "trt_profile_opt_shapes": shapes(*self.opt),
                "trt_profile_max_shapes": shapes(*self.max)}


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheDirError(f"cannot create the TensorRT cache directory {path}: {exc}. Fix: pass "
                            "tensorrt_cache_dir= a writable folder, or set DISTILRT_CACHE_DIR") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"the TensorRT cache directory {path} is not writable. Fix: pass tensorrt_cache_dir= "
                            "a writable folder, or set DISTILRT_CACHE_DIR")
    return path


def engine_cache_dir(sha256: str, *, precision: str, profile: TensorrtProfile, root: Path | None = None) -> Path:
    """The engine directory of one graph (by SHA-256), precision and profile, under ``root``; created."""
    if len(sha256) < 16:
        raise InputError(f"an engine cache is keyed by the graph's SHA-256, got {sha256!r}")
    base = Path(root).expanduser() if root is not None else cache_root() / "tensorrt"
    return _writable_dir(base / f"{sha256[:24]}-{precision}-{profile.key}")


def timing_cache_dir(root: Path | None = None) -> Path:
    """Where TensorRT's timing cache lives: shared by every engine (it is keyed by GPU, not by model)."""
    base = Path(root).expanduser() if root is not None else cache_root() / "tensorrt"
    return _writable_dir(base / "timing")


def tensorrt_options(*, precision: str, input_names: Sequence[str], profile: TensorrtProfile, cache_dir: Path,
                     timing_dir: Path | None = None, device_id: int = 0) -> dict[str, Any]:
    """TensorRT provider options for a graph that already carries ``precision`` (see the module notes)."""
    kind = precision.split("-")[0]  # "int8-static" is int8
    if kind not in ("fp32", "fp16", "int8"):
        raise InputError(f"TensorRT runs fp32, fp16 or int8 graphs, got {precision!r}")
    reduced = kind in ("fp16", "int8")
    return {
        "device_id": device_id,
        "trt_fp16_enable": reduced,  # TensorRT 10 needs the flag to pick fp16 kernels; 11 reads the graph
        "trt_int8_enable": kind == "int8",  # explicit QDQ: no calibration table
        "trt_layer_norm_fp32_fallback": reduced,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(timing_dir or cache_dir),
        **profile.options(input_names),
    }


def graph_problem(ops: frozenset[tuple[str, str]] | set[tuple[str, str]], precision: str) -> str | None:
    """Why TensorRT cannot be given a graph with these ``(domain, op_type)`` at ``precision``; None if it can."""
    odd = nonstandard_ops(ops)
    if odd:
        shown = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
        return f"it has ONNX Runtime operators TensorRT's parser does not take ({shown})"
    unparsed = sorted({op for _, op in ops if op in UNPARSED_OPS})
    if unparsed:
        return (f"it is dynamic int8 ({', '.join(unparsed)}), which TensorRT does not parse; TensorRT int8 needs "
                "a static QuantizeLinear/DequantizeLinear graph")
    if precision.startswith("int8") and not {op for _, op in ops} >= {"QuantizeLinear", "DequantizeLinear"}:
        return "it has no QuantizeLinear/DequantizeLinear nodes (TensorRT int8 must be explicit QDQ)"
    return None


def graph_keys(manifest: Manifest, precision: str) -> list[str]:
    """Every graph of ``precision`` in the bundle, as keys for ``manifest.variant``: the standard file
    first, then same-precision variants and extra graphs (``int8-static``, ``fp16-fused``, ...)."""
    extra = getattr(manifest, "graphs", None) or {}
    keys = [key for key in (*manifest.variants, *extra) if key == precision or key.startswith(precision + "-")]
    return sorted(dict.fromkeys(keys), key=lambda key: key != precision)


def choose_graph(manifest: Manifest, directory: Path, precision: str, *,
                 ops_of: Callable[[Path], frozenset[tuple[str, str]]] = graph_ops) -> tuple[str, str]:
    """(key for ``manifest.variant``, why) of the graph TensorRT gets for ``precision``; raises
    :class:`GraphUnsupportedError` naming each candidate's problem when none fits."""
    problems: list[str] = []
    for key in graph_keys(manifest, precision):
        file = manifest.variant(key).file
        problem = graph_problem(ops_of(Path(directory) / file), precision)
        if problem is None:
            return key, f"{file}: standard ONNX operators" + (" with QDQ int8" if precision == "int8" else "")
        problems.append(f"{key} ({file}): {problem}")
    have = ", ".join(manifest.variants) or "none"
    found = "; ".join(problems) if problems else f"it has no {precision} graph (it has: {have})"
    raise GraphUnsupportedError(
        f"TensorRT cannot run bundle {manifest.name!r} at {precision}: {found}. Fix: re-export the bundle with this "
        "distilrt (`distilrt export MODEL --precision fp32,fp16,int8` writes standard-operator fp16 and static "
        "QDQ int8 graphs), pick another precision, or pass provider='cuda'")


def choose_precision(manifest: Manifest, directory: Path, precision: str, *,
                     ops_of: Callable[[Path], frozenset[tuple[str, str]]] = graph_ops) -> tuple[str, str, str]:
    """(precision, graph key, why) for TensorRT; ``precision="auto"`` takes the first of
    :data:`AUTO_PRECISIONS` the bundle has a TensorRT graph for."""
    if precision != "auto":
        return (precision, *choose_graph(manifest, directory, precision, ops_of=ops_of))
    errors = []
    for candidate in AUTO_PRECISIONS:
        try:
            return (candidate, *choose_graph(manifest, directory, candidate, ops_of=ops_of))
        except GraphUnsupportedError as exc:
            errors.append(str(exc))
    raise GraphUnsupportedError(" / ".join(errors))
