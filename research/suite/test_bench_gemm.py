"""The machine's GEMM limit through ONNX Runtime: a 512x768x3072 MatMul (fp32) and MatMulInteger (u8s8)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_gemm(benchmark: Any, kind: str) -> None:
    import onnxruntime as ort

    from distilrt.benchmarks.gemm import matmul_graph, session_options

    m, k, n = 512, 768, 3072
    session = ort.InferenceSession(matmul_graph(kind, k, n).SerializeToString(), session_options(2),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32) if kind == "fp32" else rng.integers(0, 255, (m, k), dtype=np.uint8)
    benchmark.group = "gemm"
    benchmark.extra_info["gop"] = 2 * m * k * n / 1e9
    benchmark.pedantic(session.run, args=(None, {"A": a}), rounds=20, warmup_rounds=3)
