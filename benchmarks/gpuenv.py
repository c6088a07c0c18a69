"""What a host offers the GPU check: packages, onnxruntime's build and providers, the driver's GPUs, CUDA /
cuDNN / TensorRT libraries, and per (provider, precision) why a row cannot run here."""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

CUDA, TENSORRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"
SYSTEMS: tuple[tuple[str, str], ...] = (("cuda", "fp32"), ("cuda", "fp16"), ("tensorrt", "fp16"), ("tensorrt", "int8"))
DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12", "tensorrt-cu13", "nvidia-cuda-runtime",
                 "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "torch")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _loadable(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    return None


def environment(*, providers: list[str] | None = None, nvidia_smi: str | None | object = ...) -> dict[str, Any]:
    """What this host offers: packages, onnxruntime's build and providers, the driver's GPU, libraries found."""
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "packages": {n: v for n in DISTRIBUTIONS if (v := _version(n))}}
    if env["packages"].get("onnxruntime") and env["packages"].get("onnxruntime-gpu"):
        env["conflict"] = ("onnxruntime and onnxruntime-gpu are both installed; they share one module and "
                           "overwrite each other: pip uninstall -y onnxruntime onnxruntime-gpu && "
                           "pip install 'onnxruntime-gpu[cuda,cudnn]'")
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
        env["providers"] = list(providers if providers is not None else ort.get_available_providers())
        info = getattr(getattr(ort, "capi", None), "build_and_package_info", None)
        env["build"] = {k: getattr(info, k) for k in ("package_name", "cuda_version", "cudnn_version")
                        if info is not None and hasattr(info, k)}
        if CUDA in env["providers"] and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()  # CUDA / cuDNN from the nvidia-* wheels, when installed that way
                env["preload_dlls"] = "called"
            except Exception as exc:  # reported, never fatal
                env["preload_dlls"] = f"failed: {exc}"
    except ImportError as exc:
        env["onnxruntime"], env["providers"] = None, []
        env["onnxruntime_error"] = str(exc)
    smi = shutil.which("nvidia-smi") if nvidia_smi is ... else nvidia_smi
    if smi:
        try:
            out = subprocess.run([str(smi), "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=15, check=True).stdout.strip()
            env["gpus"] = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError) as exc:
            env["gpu_error"] = f"nvidia-smi failed: {exc}"
    else:
        env["gpu_error"] = "nvidia-smi not found: no NVIDIA driver on this host"
    env["libraries"] = {"cudart": _loadable(("libcudart.so.13", "libcudart.so.12")),
                        "cudnn": _loadable(("libcudnn.so.9",)),
                        "tensorrt": _loadable(("libnvinfer.so.11", "libnvinfer.so.10"))}
    return env


def system_reasons(env: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    """Per (provider, precision): None when it can be tried here, else why not (most basic first)."""
    have = env.get("providers") or []
    reasons: dict[tuple[str, str], str | None] = {}
    for provider, precision in SYSTEMS:
        problems = []
        if env.get("onnxruntime") is None:
            problems.append(f"onnxruntime is not importable ({env.get('onnxruntime_error')})")
        elif CUDA not in have:
            problems.append(f"onnxruntime {env['onnxruntime']} has no {CUDA} (it has: {', '.join(have) or 'none'}); "
                            "on a GPU host: pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]'")
        if "gpu_error" in env:
            problems.append(env["gpu_error"])
        if provider == "tensorrt" and env.get("onnxruntime") is not None and TENSORRT not in have:
            problems.append(f"onnxruntime has no {TENSORRT}")
        if provider == "tensorrt" and env.get("libraries", {}).get("tensorrt") is None:
            problems.append("the TensorRT library (libnvinfer) is not on the library path")
        reasons[(provider, precision)] = "; ".join(problems) or None
    return reasons


# -- measurements (each takes a built task) ---------------------------------------------------------
