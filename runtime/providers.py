"""Execution providers: the one place that turns ``provider="auto"|"cpu"|"cuda"|"tensorrt"`` into ORT terms.

Resolution happens twice: before the session is built, against ``onnxruntime.get_available_providers()``
(what this build was compiled with), and after, against ``session.get_providers()`` (what actually
loaded: a CUDA build without a usable driver silently falls back to CPU).  An explicit request that
cannot be met raises :class:`ProviderUnavailableError`; ``auto`` falls back and says so in a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import ProviderUnavailableError, UnknownNameError

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES: tuple[str, ...] = ("auto", *PROVIDERS)
#: What ``auto`` tries, best first.  TensorRT is opt-in: its first engine build takes minutes.
AUTO_ORDER: tuple[str, ...] = ("cuda", "cpu")
#: Shape profile used for TensorRT when the caller gives no typical length.
DEFAULT_OPT_LENGTH = 128


@dataclass(frozen=True)
class ProviderPlan:
    """The resolved provider list handed to ``InferenceSession`` and what it was resolved from."""

    requested: str  # what the caller asked for ("auto", "cpu", ...)
    name: str  # the resolved short name ("cpu", "cuda", "tensorrt")
    providers: tuple[tuple[str, dict[str, Any]], ...]  # (ORT name, options), best first
    device: str = "cpu"  # where inputs and outputs live: "cpu" or "cuda"
    device_id: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def primary(self) -> str:
        return self.providers[0][0]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.providers]

    @property
    def options(self) -> list[dict[str, Any]]:
        return [opts for _, opts in self.providers]


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _missing(request: str, available: Sequence[str]) -> ProviderUnavailableError:
    have = ", ".join(available) or "none"
    hint = {
        "cuda": "install onnxruntime-gpu (`pip install 'distilrt[gpu]'`) with a matching CUDA/cuDNN, or pass provider='cpu'",
        "tensorrt": "install onnxruntime-gpu built with TensorRT and the TensorRT libraries, or pass provider='cuda'",
    }.get(request, "pass provider='auto'")
    return ProviderUnavailableError(
        f"provider {request!r} ({PROVIDERS[request]}) is not available in this onnxruntime; it has: {have}. Fix: {hint}"
    )


def cuda_options(*, device_id: int = 0) -> dict[str, Any]:
    """CUDA provider options: cuDNN picks convolution algorithms once, copies run on their own stream."""
    return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": True}


def tensorrt_options(
    *,
    precision: str,
    input_names: Sequence[str],
    max_batch: int,
    max_length: int,
    cache_dir: Path,
    opt_length: int = DEFAULT_OPT_LENGTH,
    device_id: int = 0,
) -> dict[str, Any]:
    """TensorRT provider options: precision flags, a persistent engine cache, and one shape profile.

    The min/opt/max profile covers every (batch, length) the runtime feeds, so TensorRT builds one
    engine per model instead of one per new shape.  Engines are cached in ``cache_dir``.
    """
    if max_batch < 1 or max_length < 1:
        raise ValueError(f"max_batch and max_length must be >= 1 (got {max_batch}, {max_length})")
    opt_length = max(1, min(opt_length, max_length))

    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in input_names)

    cache_dir = Path(cache_dir)
    return {
        "device_id": device_id,
        "trt_fp16_enable": precision == "fp16",
        "trt_int8_enable": precision == "int8",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(max_batch, opt_length),
        "trt_profile_max_shapes": shapes(max_batch, max_length),
    }


def resolve_providers(
    request: str,
    *,
    available: Sequence[str] | None = None,
    device_id: int = 0,
    tensorrt: dict[str, Any] | None = None,
) -> ProviderPlan:
    """Turn a provider request into the ORT provider list, checking what this onnxruntime has.

    ``tensorrt`` holds the TensorRT options (see :func:`tensorrt_options`); it is needed only when
    TensorRT is chosen.  CPU is always appended last so that operators a GPU provider lacks still run.
    """
    if request not in PROVIDER_CHOICES:
        raise UnknownNameError(f"unknown provider {request!r}; known: {', '.join(PROVIDER_CHOICES)}")
    have = list(available) if available is not None else available_providers()
    notes: list[str] = []
    if request == "auto":
        chosen = next((name for name in AUTO_ORDER if PROVIDERS[name] in have), None)
        if chosen is None:
            raise _missing("cpu", have)
        if chosen != AUTO_ORDER[0]:
            notes.append(f"provider auto: {PROVIDERS[AUTO_ORDER[0]]} is not available here (have: {', '.join(have)}); "
                         f"using {PROVIDERS[chosen]}")
            logger.info(notes[-1])
    else:
        chosen = request
        if PROVIDERS[chosen] not in have:
            raise _missing(chosen, have)

    entries: list[tuple[str, dict[str, Any]]] = []
    if chosen == "tensorrt":
        if tensorrt is None:
            raise ValueError("tensorrt options are required when the TensorRT provider is chosen")
        entries.append((PROVIDERS["tensorrt"], dict(tensorrt)))
    if chosen in ("tensorrt", "cuda") and PROVIDERS["cuda"] in have:
        entries.append((PROVIDERS["cuda"], cuda_options(device_id=device_id)))
    entries.append((PROVIDERS["cpu"], {}))
    device = "cuda" if chosen in ("cuda", "tensorrt") else "cpu"
    return ProviderPlan(request, chosen, tuple(entries), device=device, device_id=device_id, notes=tuple(notes))


def check_session_providers(plan: ProviderPlan, loaded: Sequence[str]) -> ProviderPlan:
    """Compare the session's ``get_providers()`` with the plan after the session was built.

    An explicit request whose provider did not load raises; ``auto`` logs a warning and returns the
    plan the session really runs (CPU, so IO binding is not used for a device that is not there).
    """
    if plan.primary in loaded:
        return plan
    message = (f"onnxruntime listed {plan.primary} but the session loaded only {', '.join(loaded) or 'nothing'} "
               "(a missing CUDA/cuDNN/TensorRT library is the usual cause)")
    if plan.requested != "auto":
        raise ProviderUnavailableError(f"{message}; fix the installation or pass provider='cpu'")
    logger.warning("%s; running on CPU", message)
    return ProviderPlan(plan.requested, "cpu", ((PROVIDERS["cpu"], {}),), device="cpu",
                        notes=(*plan.notes, message))
