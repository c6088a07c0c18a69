"""Engines: one module per backend that runs a bundle's ONNX files.

- :mod:`.onnxruntime` — ONNX Runtime (CPU, CUDA, TensorRT); the one place ``SessionOptions`` are built.
- :mod:`.openvino` — OpenVINO on x86 CPUs (fp32, bf16 on AMX / AVX-512 BF16, static int8); the
  ``openvino`` package is imported only when this engine is used (``pip install 'distilrt[openvino]'``).

Both load a file only after its SHA-256 matched the manifest (:func:`.base.verify_variant`) and give
tasks the same interface (:class:`.base.Engine`).
"""

from __future__ import annotations

from .base import Engine, EngineInfo, check_unchanged, verify_variant

#: Engine names, in the order ``distilrt info`` lists them.
ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")

__all__ = ["ENGINES", "Engine", "EngineInfo", "check_unchanged", "verify_variant"]
