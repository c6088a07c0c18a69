"""Execution providers: the one place that turns ``provider="auto"|"cpu"|"cuda"|"tensorrt"`` into ORT terms.

Resolution happens twice: before the session is built, against ``onnxruntime.get_available_providers()``
(what this build was compiled with), and after, against ``session.get_providers()`` (what actually
loaded: a CUDA build without a usable driver or CUDA/cuDNN libraries logs a warning and runs on CPU).
An explicit request that cannot be met raises :class:`ProviderUnavailableError`; ``auto`` falls back,
and the caller re-plans precision and settings for the CPU (see ``pipeline``).

Sessions are created (in :mod:`distilrt.runtime.engines.onnxruntime`) with ONNX Runtime's Python-level
fallback off (``enable_fallback=0``): otherwise a TensorRT or CUDA session that fails to build is
silently retried on other providers and the real error is only printed on stdout.  Everything TensorRT needs (options, shape profile, engine cache, which graph
it may be given) lives in :mod:`distilrt.runtime.tensorrt`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import MissingDependencyError, ProviderUnavailableError, UnknownNameError

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES: tuple[str, ...] = ("auto", *PROVIDERS)
#: What ``auto`` tries, best first.  TensorRT is opt-in: its first engine build takes minutes.
AUTO_ORDER: tuple[str, ...] = ("cuda", "cpu")
#: Session configuration for sessions whose work runs on a GPU.  Intra-op threads only feed the device
#: there; spinning would burn a core per thread while the GPU computes.
GPU_SESSION_CONFIG: dict[str, str] = {"session.intra_op.allow_spinning": "0"}

#: How to get a GPU onnxruntime.  ``onnxruntime`` and ``onnxruntime-gpu`` ship the same ``onnxruntime``
#: module and must never be installed together: the second overwrites the first's files.
GPU_INSTALL = ("pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu[cuda,cudnn]' "
               "(or `pip install 'distilrt[gpu]'` in an environment without onnxruntime)")
CPU_INSTALL = "pip install 'distilrt[cpu]' (or: pip install onnxruntime)"


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

    @property
    def session_config(self) -> dict[str, str]:
        """``SessionOptions.add_session_config_entry`` pairs this plan's sessions need."""
        return dict(GPU_SESSION_CONFIG) if self.device != "cpu" else {}


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a :class:`MissingDependencyError` naming both installs."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            f"onnxruntime is not installed ({exc}). Fix: {CPU_INSTALL}; on an NVIDIA GPU host: {GPU_INSTALL}"
        ) from exc
    return onnxruntime


def available_providers() -> list[str]:
    return list(import_onnxruntime().get_available_providers())


def install_hint(request: str) -> str:
    """The fix for a provider this onnxruntime lacks."""
    if request == "cuda":
        return (f"this is the CPU build of onnxruntime; on a host with an NVIDIA GPU: {GPU_INSTALL}, "
                "or pass provider='cpu'")
    if request == "tensorrt":
        return (f"install the GPU build ({GPU_INSTALL}) and the TensorRT libraries it was built against "
                "(libnvinfer on the library path), or pass provider='cuda'")
    return "pass provider='auto'"


def _missing(request: str, available: Sequence[str]) -> ProviderUnavailableError:
    have = ", ".join(available) or "none"
    return ProviderUnavailableError(
        f"provider {request!r} ({PROVIDERS[request]}) is not available in this onnxruntime; it has: {have}. "
        f"Fix: {install_hint(request)}"
    )


def cuda_options(*, device_id: int = 0) -> dict[str, Any]:
    """CUDA provider options.

    ``use_tf32=0``: on Ampere and later GPUs the CUDA provider otherwise runs fp32 MatMuls with TF32
    tensor cores (10-bit mantissa), and fp32 results no longer meet the 1e-4 fp32 parity tolerance.
    fp16 graphs are unaffected.  cuDNN picks convolution algorithms by heuristic (the encoders have none
    worth an exhaustive search); copies run on the compute stream.
    """
    return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": True,
            "use_tf32": 0}


def resolve_providers(
    request: str,
    *,
    available: Sequence[str] | None = None,
    device_id: int = 0,
    tensorrt: dict[str, Any] | None = None,
) -> ProviderPlan:
    """Turn a provider request into the ORT provider list, checking what this onnxruntime has.

    ``tensorrt`` holds the TensorRT options (see :func:`distilrt.runtime.tensorrt.tensorrt_options`); it
    is needed only when TensorRT is chosen.  CPU is always appended last so that operators a GPU
    provider lacks still run.
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
            notes.append(f"provider auto: {PROVIDERS[AUTO_ORDER[0]]} is not in this onnxruntime (it has: "
                         f"{', '.join(have)}); using {PROVIDERS[chosen]}")
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


def cpu_plan(plan: ProviderPlan, reason: str) -> ProviderPlan:
    """The CPU plan that replaces ``plan`` when its GPU provider did not load."""
    return ProviderPlan(plan.requested, "cpu", ((PROVIDERS["cpu"], {}),), device="cpu", notes=(*plan.notes, reason))


def session_failure(plan: ProviderPlan, exc: BaseException) -> ProviderUnavailableError:
    """The typed error for a GPU session onnxruntime refused to build, carrying onnxruntime's own message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if plan.name == "tensorrt":
        fix = ("Fix: check that the TensorRT libraries match this onnxruntime-gpu (`python scripts/gpu_check.py` "
               "lists them), or pass provider='cuda'")
    else:
        fix = ("Fix: check the CUDA / cuDNN libraries this onnxruntime-gpu was built for (`python scripts/gpu_check.py` "
               "lists them), or pass provider='cpu'")
    return ProviderUnavailableError(f"onnxruntime could not build a session on {plan.primary}: "
                                    f"{' | '.join(lines[:6]) or type(exc).__name__}. {fix}")


def check_session_providers(plan: ProviderPlan, loaded: Sequence[str], *, cause: str = "") -> ProviderPlan:
    """Compare the session's ``get_providers()`` with the plan after the session was built.

    An explicit request whose provider did not load raises; ``auto`` logs a warning and returns the CPU
    plan the session really runs, for the caller to re-plan precision and settings.  ``cause`` is what
    onnxruntime printed while building the session, if anything.
    """
    if plan.primary in loaded:
        return plan
    reason = cause or ("the usual cause is a CUDA or cuDNN library onnxruntime-gpu could not load: install the ones "
                       "it was built for with `pip install 'onnxruntime-gpu[cuda,cudnn]'` and call "
                       "`onnxruntime.preload_dlls()` before the first session, or put them on LD_LIBRARY_PATH")
    message = (f"onnxruntime listed {plan.primary} but the session loaded only {', '.join(loaded) or 'nothing'} "
               f"({reason})")
    if plan.requested != "auto":
        raise ProviderUnavailableError(f"{message}. Fix the installation (`python scripts/gpu_check.py` shows "
                                       "what is missing) or pass provider='cpu'")
    logger.warning("%s; falling back to the CPU", message)
    return cpu_plan(plan, message)
