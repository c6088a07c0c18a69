"""Which engine runs a bundle: the request, this host's tuning profile, or the default by CPU flags.

``pipeline(precision=..., provider=...)`` resolves here before any file is opened:

- ``provider="openvino"`` runs on OpenVINO; ``"cpu"``, ``"cuda"``, ``"tensorrt"`` on ONNX Runtime
  (resolved by :mod:`distilrt.runtime.providers` as before).
- ``precision="bf16"`` exists on OpenVINO only; ``provider="auto"`` takes it there.
- ``precision="auto", provider="auto"``: the setting ``distilrt tune`` measured fastest on this host
  for this bundle, if there is one.  Otherwise the default: ONNX Runtime on CUDA when it is usable;
  on a CPU with AMX-BF16 or AVX-512-BF16 and ``openvino`` installed, OpenVINO with the bundle's static
  int8 file when it has one that met its agreement target; everywhere else ONNX Runtime as before
  (dynamic int8 on CPU).  OpenVINO's bf16 is not the untuned default: without static int8, ONNX Runtime's
  dynamic int8 measured faster on the AMX host this was built on (see the README's engine table).
- Any other explicit precision with ``provider="auto"`` stays on ONNX Runtime, except ``int8-static``,
  whose QDQ graph ONNX Runtime's CPU provider runs several times slower than OpenVINO: it goes to
  OpenVINO when that is installed and no GPU is in use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bundle import Bundle, misses_target
from ..errors import UnknownNameError, UnsupportedPrecisionError
from ..hostinfo import cpu_flags
from ..registry import PRECISIONS
from . import openvino as ov_engine

PROVIDER_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "tensorrt", "openvino")
#: Precisions a caller may ask for (file variants plus engine-only ones).
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS, "bf16")


@dataclass(frozen=True)
class EngineChoice:
    """The engine, precision and (for ONNX Runtime) provider request a pipeline will use, and why."""

    engine: str  # "onnxruntime" or "openvino"
    precision: str  # "auto" (ONNX Runtime resolves it per device) or a concrete precision
    provider: str  # the ONNX Runtime provider request, or "openvino"
    reason: str
    source: str  # "request", "profile" or "default"
    threads: int | None = None  # from the profile
    streams: int | None = None  # from the profile (bulk work)
    graph: str | None = None  # from the profile: the manifest key of the file to run


def _usable_int8_static(bundle: Bundle) -> bool:
    variant = bundle.manifest.variants.get(ov_engine.STATIC_INT8)
    return variant is not None and not misses_target(variant)


def _cuda_usable() -> bool:
    from ..providers import PROVIDERS, available_providers

    return PROVIDERS["cuda"] in available_providers()


def default_choice(bundle: Bundle, *, flags: set[str] | None = None, openvino: bool | None = None,
                   cuda: bool | None = None) -> EngineChoice:
    """The untuned choice for ``precision="auto", provider="auto"`` (see the module docstring)."""
    cuda = _cuda_usable() if cuda is None else cuda
    if cuda:
        return EngineChoice("onnxruntime", "auto", "auto", "CUDA is usable: ONNX Runtime on the GPU", "default")
    flags = cpu_flags() if flags is None else flags
    openvino = ov_engine.available() if openvino is None else openvino
    native_bf16 = ov_engine.has_native_bf16(flags)
    if native_bf16 and openvino and _usable_int8_static(bundle):
        return EngineChoice("openvino", ov_engine.STATIC_INT8, "openvino",
                            "CPU has AMX/AVX-512-BF16, openvino is installed and the bundle has static int8", "default")
    if not native_bf16:
        why = "CPU has no AMX-BF16 / AVX-512-BF16"
    elif not openvino:
        why = "openvino is not installed (pip install 'distilrt[openvino]')"
    else:
        why = "bundle has no static int8 variant that met its target"
    return EngineChoice("onnxruntime", "auto", "auto", f"{why}: ONNX Runtime", "default")


def choose_engine(bundle: Bundle, *, precision: str, provider: str, use_profile: bool = True) -> EngineChoice:
    """Resolve a pipeline's ``precision`` and ``provider`` request to an engine (see the module docstring)."""
    if provider not in PROVIDER_CHOICES:
        raise UnknownNameError(f"unknown provider {provider!r}; known: {', '.join(PROVIDER_CHOICES)}")
    if precision not in PRECISION_CHOICES:
        raise UnknownNameError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_CHOICES)}")
    if provider == "openvino":
        if precision == "auto":
            if _usable_int8_static(bundle):
                chosen = ov_engine.STATIC_INT8
            else:
                chosen = "bf16" if ov_engine.has_native_bf16() else "fp32"
            return EngineChoice("openvino", chosen, "openvino", f"provider openvino; precision auto: {chosen}",
                                "request")
        return EngineChoice("openvino", precision, "openvino", "provider openvino", "request")
    if precision == "bf16":
        if provider != "auto":
            raise UnsupportedPrecisionError(
                f"precision 'bf16' runs on OpenVINO only, not on ONNX Runtime's {provider!r} provider; pass "
                "provider='openvino' (or 'auto'), or precision='fp32' / 'int8' for ONNX Runtime")
        return EngineChoice("openvino", "bf16", "openvino", "precision bf16 runs on OpenVINO", "request")
    if provider == "auto" and precision == "auto":
        if use_profile:
            from ..profile import lookup

            entry, why = lookup(bundle.manifest)
            if entry is not None:
                setting = entry.latency
                same = entry.bulk and (entry.bulk.engine, entry.bulk.precision, entry.bulk.graph) == (
                    setting.engine, setting.precision, setting.graph)
                streams = entry.bulk.streams if same and entry.bulk else None
                return EngineChoice(setting.engine, setting.precision,
                                    "openvino" if setting.engine == "openvino" else "cpu", why, "profile",
                                    threads=setting.threads, streams=streams, graph=setting.graph or None)
            default = default_choice(bundle)
            return EngineChoice(default.engine, default.precision, default.provider,
                                f"{why}; default: {default.reason}", "default")
        return default_choice(bundle)
    if (provider == "auto" and precision == ov_engine.STATIC_INT8 and ov_engine.available()
            and not _cuda_usable()):
        return EngineChoice("openvino", precision, "openvino",
                            "static int8 (QDQ) runs faster on OpenVINO than on ONNX Runtime's CPU provider", "request")
    return EngineChoice("onnxruntime", precision, provider, "ONNX Runtime", "request")
