"""One transformer projection, timed in each form an ONNX graph can hold it on CPU.

    python -m research.projections [--tokens 128 --tokens 384] [--threads 2] [--seconds 0.5]

A DistilBERT layer's weight GEMMs are 768x768 (Q, K, V, attention output), 768x3072 (FFN up) and
3072x768 (FFN down), with M = batch x tokens rows.  Forms:

``fp32``          ``MatMul`` + bias on float32, what the fp32 graphs run.
``int8-kernel``   ``MatMulInteger`` on an input that is already uint8: the integer GEMM alone, the
                  kernel the int8 peak is measured with (see :mod:`distilrt.benchmarks.gemm`).
``int8-dynamic``  ``DynamicQuantizeMatMul`` (float input quantised on every call, per-channel int8
                  weight, bias): what ONNX Runtime fuses a dynamically quantised MatMul into, and so
                  what distilrt's and optimum's int8 graphs run.
``int8-static``   ``QuantizeLinear`` with a fixed scale + ``MatMulIntegerToFloat``: what static
                  (calibrated) activation quantisation would run instead.

The gap between ``int8-kernel`` and ``int8-dynamic`` is work the model cannot avoid with these
operators (quantising the input, turning the int32 result back into floats), and it bounds how close
an int8 model can get to the int8 peak.

A one-projection timing keeps its weight hot in the core's cache; a model streams all of its weights
(42 MB at int8 for DistilBERT) on every pass.  The second table times a stack of FFN blocks (768 ->
3072 -> 768, like the model's) twice: every block with its own weights, as in the model, and every
block reusing one weight set, which stays cached.  The difference is the cost of reading weights.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from distilrt.benchmarks.gemm import session_options
from distilrt.benchmarks.timing import time_calls

from .compare import PAUSE_S

FORMS: tuple[str, ...] = ("fp32", "int8-kernel", "int8-dynamic", "int8-static")
#: (K, N) of DistilBERT's projections: attention Q/K/V/output, FFN up, FFN down.
LAYER_SHAPES: tuple[tuple[int, int], ...] = ((768, 768), (768, 3072), (3072, 768))
#: Fixed activation quantisation of the ``int8-static`` form (the inputs are drawn to fit it).
STATIC_SCALE, STATIC_ZERO = 2.0 / 255.0, 128


@dataclass(frozen=True)
class Timing:
    form: str
    m: int
    k: int
    n: int
    ms: float  # median per call

    @property
    def gops(self) -> float:
        return 2.0 * self.m * self.k * self.n / (self.ms / 1e3) / 1e9


def projection_graph(form: str, k: int, n: int, *, seed: int = 0):  # onnx.ModelProto, imported lazily
    """A one-projection graph, input ``A`` [M, k] and output ``Y`` [M, n], of ``form`` (see :data:`FORMS`).

    Every int8 form holds the same int8 weight, scale 0.01 per output column; ``fp32`` holds that
    weight dequantised, so all forms compute the same projection up to input quantisation.
    """
    from onnx import TensorProto, helper, numpy_helper

    if form not in FORMS:
        raise ValueError(f"unknown projection form {form!r}; choose from {', '.join(FORMS)}")
    rng = np.random.default_rng(seed)
    q_weight = rng.integers(-127, 128, (k, n), dtype=np.int8)
    scale = np.full((n,), 0.01, np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    inits = {
        "W": q_weight, "W_scale": scale, "W_zero": np.zeros((n,), np.int8), "bias": bias,
        "A_scale": np.array(STATIC_SCALE, np.float32), "A_zero": np.array(STATIC_ZERO, np.uint8),
    }
    a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    ms = "com.microsoft"
    if form == "fp32":
        inits = {"W": q_weight.astype(np.float32) * scale, "bias": bias}
        nodes = [helper.make_node("MatMul", ["A", "W"], ["AW"]), helper.make_node("Add", ["AW", "bias"], ["Y"])]
    elif form == "int8-kernel":
        inits = {"W": q_weight, "W_zero": inits["W_zero"]}
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
        nodes = [helper.make_node("MatMulInteger", ["A", "W", "", "W_zero"], ["Y"])]
    elif form == "int8-dynamic":
        nodes = [helper.make_node("DynamicQuantizeMatMul", ["A", "W", "W_scale", "W_zero", "bias"], ["Y"], domain=ms)]
    else:
        nodes = [helper.make_node("QuantizeLinear", ["A", "A_scale", "A_zero"], ["A_q"]),
                 helper.make_node("MatMulIntegerToFloat", ["A_q", "W", "A_scale", "W_scale", "A_zero", "W_zero", "bias"],
                                  ["Y"], domain=ms)]
    read = {name for node in nodes for name in node.input}
    graph = helper.make_graph(nodes, f"projection_{form}", [helper.make_tensor_value_info("A", a_type, ["M", k])],
                              [helper.make_tensor_value_info("Y", y_type, ["M", n])],
                              [numpy_helper.from_array(v, name) for name, v in inits.items() if name in read])
    return _model(graph)


def _model(graph):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8  # onnxruntime reads at most IR 13; onnx >= 1.23 writes 14 by default
    return model


#: Forms whose output is float, so projections can be chained into an FFN stack.
STACK_FORMS: tuple[str, ...] = ("fp32", "int8-dynamic")


def ffn_stack_graph(form: str, blocks: int, *, distinct: bool, hidden: int = 768, inner: int = 3072):
    """``blocks`` FFN blocks (``hidden`` -> ``inner`` -> ``hidden``) of ``form`` in a row, input and output [M, hidden].

    ``distinct``: each block has its own weights (a model's case); otherwise every block reads the same
    two weight sets.  No activation between the projections: the stack is there to time weight reads.
    """
    from onnx import TensorProto, helper

    if form not in STACK_FORMS:
        raise ValueError(f"FFN stacks chain float outputs: form must be one of {', '.join(STACK_FORMS)}, got {form!r}")
    nodes, weights = [], {}
    current = "A"
    for step in range(2 * blocks):
        seed = step if distinct else step % 2
        if seed not in weights:  # one projection graph per weight set, its initializers renamed apart
            k, n = (hidden, inner) if seed % 2 == 0 else (inner, hidden)
            weights[seed] = projection_graph(form, k, n, seed=seed).graph
            for initializer in weights[seed].initializer:
                initializer.name = f"w{seed}_{initializer.name}"
        single, out = weights[seed], f"h{step}"
        local = {i.name.split("_", 1)[1]: i.name for i in single.initializer}
        for node in single.node:
            inputs = [current if x == "A" else local.get(x, x and f"{out}/{x}") for x in node.input]
            outputs = [out if x == "Y" else f"{out}/{x}" for x in node.output]
            nodes.append(helper.make_node(node.op_type, inputs, outputs, domain=node.domain, name=f"{out}/{node.op_type}"))
        current = out
    value = TensorProto.FLOAT
    graph = helper.make_graph(nodes, f"ffn_stack_{form}", [helper.make_tensor_value_info("A", value, ["M", hidden])],
                              [helper.make_tensor_value_info(current, value, ["M", hidden])],
                              [i for g in weights.values() for i in g.initializer])
    return _model(graph)


def time_stack(form: str, m: int, blocks: int, *, distinct: bool, threads: int, seconds: float = 0.5) -> float:
    """Median ms per FFN block of :func:`ffn_stack_graph` at ``m`` rows."""
    return _median_ms(ffn_stack_graph(form, blocks, distinct=distinct), projection_input(form, m, 768),
                      threads=threads, seconds=seconds) / blocks


def projection_input(form: str, m: int, k: int, *, seed: int = 1) -> np.ndarray:
    """An input for ``form``: floats within the static scale's range, or (``int8-kernel``) uint8."""
    rng = np.random.default_rng(seed)
    if form == "int8-kernel":
        return rng.integers(0, 256, (m, k), dtype=np.uint8)
    return rng.uniform(-0.99, 0.99, (m, k)).astype(np.float32)


def time_projection(form: str, m: int, k: int, n: int, *, threads: int, seconds: float = 0.5) -> Timing:
    """Median latency of one call of ``form`` at M x K x N, over ``seconds`` (at least 10 calls)."""
    return Timing(form, m, k, n, _median_ms(projection_graph(form, k, n), projection_input(form, m, k),
                                            threads=threads, seconds=seconds))


def _median_ms(model, a: np.ndarray, *, threads: int, seconds: float) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    latency = time_calls(partial(session.run, None, {"A": a}), seconds=seconds, min_runs=10, warmup=3)
    del session
    time.sleep(PAUSE_S)  # let this session's pool threads stop spinning before the next one runs
    return latency.p50


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m research.projections",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, action="append", help="M, rows per call (repeatable; default 128, 384, 1024)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per form and shape (default 0.5)")
    parser.add_argument("--blocks", type=int, default=6, help="FFN blocks per stack (default 6, as DistilBERT)")
    args = parser.parse_args(argv)
    if any(m < 1 for m in args.tokens or ()) or args.threads < 1 or args.blocks < 1 or args.seconds <= 0:
        parser.error("--tokens, --threads and --blocks must be >= 1 and --seconds > 0")
    print(f"median ms per call and GOP/s, {args.threads} threads")
    print(f"{'M x K x N':>16}  " + "  ".join(f"{form:>20}" for form in FORMS))
    for m in args.tokens or (128, 384, 1024):
        for k, n in LAYER_SHAPES:
            cells = []
            for form in FORMS:
                timing = time_projection(form, m, k, n, threads=args.threads, seconds=args.seconds)
                cells.append(f"{timing.ms:8.3f} {timing.gops:7.0f}/s".rjust(20))
            print(f"{m}x{k}x{n}".rjust(16) + "  " + "  ".join(cells), flush=True)
    print(f"\nFFN blocks (768 -> 3072 -> 768), {args.blocks} in a row: median ms per block")
    print(f"{'M':>6}  {'form':>13}  {'own weights':>12}  {'one weight set':>14}  ratio")
    for m in args.tokens or (128, 384, 1024):
        for form in STACK_FORMS:
            own = time_stack(form, m, args.blocks, distinct=True, threads=args.threads, seconds=args.seconds)
            reused = time_stack(form, m, args.blocks, distinct=False, threads=args.threads, seconds=args.seconds)
            print(f"{m:>6}  {form:>13}  {own:12.3f}  {reused:14.3f}  {own / reused:5.2f}", flush=True)


if __name__ == "__main__":
    main()
