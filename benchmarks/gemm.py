"""The machine's own limit: fp32 and int8 GEMM peaks, and a model's matmul work.

Peak is measured with a one-node graph (``MatMul`` on float32, ``MatMulInteger`` on uint8 x int8,
the u8s8 path VNNI and AMX accelerate) through ONNX Runtime, and with a QDQ ``MatMul`` (an int8
weight, an activation quantised to uint8) compiled by OpenVINO with the settings its int8-static engine
uses, on the same thread budget as the systems under test, over a few large shapes of the kind a
transformer layer runs; the best sustained rate is the peak.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

#: (M, K, N): a 384- and a 512-token FFN up-projection, their down-projections, and a square problem.
PEAK_SHAPES: tuple[tuple[int, int, int], ...] = ((384, 768, 3072), (384, 3072, 768), (512, 768, 3072),
                                                 (512, 3072, 768), (1024, 1024, 1024))


@dataclass(frozen=True)
class Peak:
    gops: float  # billions of multiply-accumulate * 2 per second
    shape: tuple[int, int, int]
    per_shape: dict[str, float]
    engine: str = "onnxruntime"


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


def qdq_matmul_graph(k: int, n: int):  # onnx.ModelProto, imported lazily
    """``Y = MatMul(DQ(Q(A)), DQ(W))``: float in and out, int8 in the middle, as a static int8 graph holds a
    projection (per-tensor uint8 activation, per-column int8 weight)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 127, (k, n), dtype=np.int8), "W"),
             numpy_helper.from_array((rng.random(n).astype(np.float32) + 0.5) / 127, "w_scale"),
             numpy_helper.from_array(np.zeros(n, dtype=np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.02, dtype=np.float32), "a_scale"),
             numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["A", "a_scale", "a_zero"], ["A_q"]),
             helper.make_node("DequantizeLinear", ["A_q", "a_scale", "a_zero"], ["A_dq"]),
             helper.make_node("DequantizeLinear", ["W", "w_scale", "w_zero"], ["W_dq"], axis=1),
             helper.make_node("MatMul", ["A_dq", "W_dq"], ["Y"])]
    graph = helper.make_graph(nodes, "qdq_gemm", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def measure_openvino_int8_peak(*, threads: int, seconds: float = 1.0,
                               shapes: tuple[tuple[int, int, int], ...] = PEAK_SHAPES) -> Peak:
    """Best GOP/s of a QDQ int8 ``MatMul`` compiled by OpenVINO as distilrt's int8-static engine compiles
    (latency hint, one stream, ``threads`` threads, bf16 float parts on AMX hosts); median per shape.

    The time is the integer GEMM node's own (OpenVINO's performance counters), without the
    ``FakeQuantize`` of the float input in front of it, which a model fuses into the operator before it
    (measured alone at 1x384x768: about a fifth of the wall time of the one-node graph).
    """
    import tempfile
    from pathlib import Path

    from distilrt.runtime.engines import openvino as ov_engine

    core = ov_engine.core()
    config = {**ov_engine.compile_config(precision=ov_engine.STATIC_INT8, threads=threads, streams=1, hint="latency",
                                         cache_dir=None), "PERF_COUNT": "YES"}
    rng = np.random.default_rng(1)
    per_shape: dict[str, float] = {}
    best: tuple[float, tuple[int, int, int]] = (0.0, shapes[0])
    with tempfile.TemporaryDirectory(prefix="distilrt-gemm-") as tmp:
        for m, k, n in shapes:
            path = Path(tmp) / f"qdq_{k}x{n}.onnx"
            path.write_bytes(qdq_matmul_graph(k, n).SerializeToString())
            compiled = core.compile_model(str(path), "CPU", config)
            request = compiled.create_infer_request()
            feed = {"A": rng.standard_normal((m, k)).astype(np.float32)}
            rate = 2.0 * m * k * n / _median_call(lambda: _gemm_node_seconds(request, feed), seconds) / 1e9
            per_shape[f"{m}x{k}x{n}"] = round(rate, 2)
            if rate > best[0]:
                best = (rate, (m, k, n))
    return Peak(round(best[0], 2), best[1], per_shape, engine="openvino")


def _gemm_node_seconds(request: Any, feed: dict[str, np.ndarray]) -> float:
    """Run ``request`` once; the seconds its matrix-product nodes took (OpenVINO performance counters)."""
    request.infer(feed)
    return sum(info.real_time.total_seconds() for info in request.profiling_info
               if info.node_type in ("FullyConnected", "MatMul"))


def _median_call(call: Any, seconds: float) -> float:
    """Median seconds of ``call`` over about ``seconds`` (at least 5 runs) after 3 warm-up calls; a call
    that returns a number reports its own time (else its wall time is taken)."""
    for _ in range(3):
        call()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter()
        own = call()
        samples.append(own if isinstance(own, float) and own > 0 else time.perf_counter() - start)
    # Median, not minimum: a peak the machine sustains, not one lucky run.
    return statistics.median(samples)


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
        rate = 2.0 * m * k * n / _median_call(lambda: session.run(None, feed), seconds) / 1e9
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
