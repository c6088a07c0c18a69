"""The machine's own limit: fp32 and int8 GEMM peak through ONNX Runtime, and a model's matmul work.

Peak is measured with a one-node graph (``MatMul`` on float32, ``MatMulInteger`` on uint8 x int8,
the u8s8 path VNNI accelerates) on the same thread budget as the systems under test, over a few
large shapes of the kind a transformer layer runs; the best sustained rate is the peak.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

#: (M, K, N): a 512-token FFN up-projection, its down-projection, and a square problem.
PEAK_SHAPES: tuple[tuple[int, int, int], ...] = ((512, 768, 3072), (512, 3072, 768), (1024, 1024, 1024))


@dataclass(frozen=True)
class Peak:
    gops: float  # billions of multiply-accumulate * 2 per second
    shape: tuple[int, int, int]
    per_shape: dict[str, float]


def matmul_graph(kind: str, k: int, n: int):  # onnx.ModelProto, imported lazily
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "fp32":
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type, inits = TensorProto.FLOAT, TensorProto.FLOAT, [weight]
    else:
        weight = numpy_helper.from_array(rng.integers(-127, 127, (k, n), dtype=np.int8), "B")
        zero = numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero")
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero"], ["Y"])
        a_type, y_type, inits = TensorProto.UINT8, TensorProto.INT32, [weight, zero]
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_type, ["M", k])],
                              [helper.make_tensor_value_info("Y", y_type, ["M", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime reads at most IR 13; onnx >= 1.23 writes 14 by default
    return model


def session_options(threads: int):
    """The runtime's ONNX Runtime session options with ``threads`` intra-op threads."""
    from distilrt.runtime.engines.onnxruntime import SessionSettings
    from distilrt.runtime.engines.onnxruntime import session_options as runtime_options

    return runtime_options(SessionSettings(threads=threads))


def measure_peak(kind: str, *, threads: int, seconds: float = 1.0) -> Peak:
    """Best GOP/s of ``kind`` ("fp32" or "int8") over :data:`PEAK_SHAPES`, ``seconds`` per shape."""
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    per_shape: dict[str, float] = {}
    best: tuple[float, tuple[int, int, int]] = (0.0, PEAK_SHAPES[0])
    for m, k, n in PEAK_SHAPES:
        model = matmul_graph(kind, k, n)
        session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                       providers=["CPUExecutionProvider"])
        if kind == "fp32":
            a = rng.standard_normal((m, k)).astype(np.float32)
        else:
            a = rng.integers(0, 255, (m, k), dtype=np.uint8)
        feed = {"A": a}
        for _ in range(3):
            session.run(None, feed)
        samples = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(samples) < 5:
            start = time.perf_counter()
            session.run(None, feed)
            samples.append(time.perf_counter() - start)
        # Median, not minimum: a peak the machine sustains, not one lucky run.
        rate = 2.0 * m * k * n / statistics.median(samples) / 1e9
        per_shape[f"{m}x{k}x{n}"] = round(rate, 2)
        if rate > best[0]:
            best = (rate, (m, k, n))
    return Peak(round(best[0], 2), best[1], per_shape)


def matmul_ops(config: dict[str, Any], *, batch: int, seq: int, task: str) -> float:
    """Multiply-add operations (x2) of the model's matrix products for one batch, heads included.

    Counts the Q/K/V/output projections, the two attention products, the FFN and the task head;
    embeddings, LayerNorm, softmax and GELU are not matrix products and are left out.
    """
    hidden = int(config.get("dim", config.get("hidden_size", 768)))
    inner = int(config.get("hidden_dim", config.get("intermediate_size", 4 * hidden)))
    layers = int(config.get("n_layers", config.get("num_hidden_layers", 6)))
    tokens = batch * seq
    per_layer = 2 * tokens * hidden * hidden * 4  # Q, K, V, output projections
    per_layer += 2 * 2 * batch * seq * seq * hidden  # QK^T and attention x V over all heads
    per_layer += 2 * 2 * tokens * hidden * inner  # FFN up and down
    head = 0
    if task == "question-answering":
        head = 2 * tokens * hidden * 2
    elif task == "fill-mask":
        vocab = int(config.get("vocab_size", 30522))
        head = 2 * tokens * hidden * hidden + 2 * tokens * hidden * vocab
    elif task == "text-classification":
        head = 2 * batch * hidden * hidden
    return float(layers * per_layer + head)


def efficiency(ops: float, seconds: float, peak_gops: float) -> float:
    """Fraction of the measured peak that ``ops`` operations in ``seconds`` reach."""
    if seconds <= 0 or peak_gops <= 0:
        return 0.0
    return ops / seconds / (peak_gops * 1e9)
