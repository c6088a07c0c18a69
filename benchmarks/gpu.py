"""GPU rows (torch fp16, ORT CUDA fp16 with IO binding, TensorRT fp16/int8): measured only with a GPU.

This machine class has none; the runner records why each row is skipped instead of leaving it out.
"""

from __future__ import annotations

from typing import Any

GPU_SYSTEMS = ("torch-cuda-fp16", "ort-cuda-fp16-iobinding", "tensorrt-fp16", "tensorrt-int8")


def gpu_reason() -> str | None:
    """None when a CUDA device and ORT's CUDA provider are both usable, else why not."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return f"onnxruntime has no CUDAExecutionProvider here (available: {', '.join(providers)})"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def gpu_rows() -> dict[str, Any]:
    reason = gpu_reason()
    if reason is not None:
        print(f"GPU rows skipped: {reason}")
        return {"measured": False, "systems": list(GPU_SYSTEMS), "reason": reason}
    # A GPU is present: the CUDA / TensorRT runners are not written for lack of hardware to check them on.
    reason = "a GPU is present, but the GPU runners are not implemented in this version"
    print(f"GPU rows skipped: {reason}")
    return {"measured": False, "systems": list(GPU_SYSTEMS), "reason": reason}
