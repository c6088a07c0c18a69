"""Static int8 in standard QDQ form: calibrated activation scales, per-channel int8 weights.

Every projection (MatMul / Gemm with a constant weight) reads ``DequantizeLinear(int8 weight)`` and an
activation that went through ``QuantizeLinear`` / ``DequantizeLinear`` with a scale fixed at export, so
a sequence's outputs never depend on what else is in its batch.  Only the int8 operators read the rounded
activation: the residual path and every other consumer keep the float tensor.  The word-embedding table is stored in
int8 with one scale per row.  Only ONNX-domain operators are used (opset >= 13, no ``com.microsoft``),
which ONNX Runtime, OpenVINO and TensorRT's explicit quantisation all read.

Two calibrators are offered: ONNX Runtime's ``quantize_static`` (min/max or percentile ranges) and
NNCF's ``nncf.quantize`` (SmoothQuant and bias correction, ``ModelType.TRANSFORMER``).  The exporter
measures the candidates on the evaluation set and keeps the most faithful.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from distilrt.runtime.errors import MissingDependencyError, UnknownNameError

from .calibration import FeedReader
from .qdq_graph import dedicate_to_operators
from .quantize import fold_weight_transposes

logger = logging.getLogger(__name__)

#: Calibration methods, in the order the exporter tries them (the first wins a tie on fidelity).
STATIC_METHODS: tuple[str, ...] = ("nncf", "ort-minmax")
#: What the exporter runs unless told otherwise: NNCF, which kept more agreement than ONNX Runtime's
#: min/max on every model measured (all-MiniLM-L6-v2, the full-size DistilBERT-QA stand-in, tiny QA) and
#: was ~35 s of a full-size export; ONNX Runtime's calibration stands in when NNCF is not installed.
DEFAULT_METHODS: tuple[str, ...] = ("nncf",)
MIN_OPSET = 13
#: Gather tables smaller than this stay fp32 (position and type embeddings: tiny, and read once per token).
MIN_EMBEDDING_ELEMENTS = 1 << 16


def check_method(method: str) -> str:
    if method not in STATIC_METHODS:
        raise UnknownNameError(f"unknown static int8 method {method!r}; known: {', '.join(STATIC_METHODS)}")
    return method


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def projection_nodes(graph: Any) -> list[str]:
    """Names of the MatMul / Gemm nodes of ``graph`` (an ``onnx.GraphProto``) whose second input is a
    weight: what static int8 quantises."""
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights]


def activation_products(graph: Any) -> list[str]:
    """Names of the MatMul nodes of ``graph`` that multiply two activations (attention scores and context):
    kept float.

    Measured with OpenVINO 2026.4 on all-MiniLM-L6-v2: an int8 score MatMul (NNCF quantises it by
    default) returned wrong outputs for every sequence of exactly 32 tokens when the float parts ran in
    bf16 (cosine 0.40-0.90 to f32), and bought no measurable speed at 1x128, 1x384 or 8x128.
    """
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not (set(n.input) & weights)]


@contextmanager
def _quiet_root() -> Iterator[None]:
    # ONNX Runtime's quantiser logs a pre-processing suggestion on the root logger for every call; it does
    # not apply to transformer graphs.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_static(model_path: Path, out_path: Path, reader: FeedReader, *, method: str = "nncf",
                    keep_fp32: Sequence[str] = ()) -> None:
    """Write the static int8 QDQ version of ``model_path`` (a plain graph: standard ONNX operators only).

    ``keep_fp32`` names projection nodes left in fp32.
    """
    check_method(method)
    with tempfile.TemporaryDirectory(prefix="distilrt-qdq-") as tmp:
        source = fold_weight_transposes(model_path, Path(tmp) / "folded.onnx") or model_path
        staged = Path(tmp) / "qdq.onnx"
        with _quiet_root():
            if method == "nncf":
                _quantize_nncf(source, staged, reader, keep_fp32)
            else:
                _quantize_ort(source, staged, reader, keep_fp32)
        import onnx

        model = onnx.load(str(staged))
        dedicate_to_operators(model)  # only the int8 operators read rounded activations (see .qdq_graph)
        quantize_embeddings(model)
        onnx.save(model, str(out_path))


def _quantize_ort(model_path: Path, out_path: Path, reader: FeedReader, keep_fp32: Sequence[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as ort_static

    reader.rewind()
    extra = {
        "ActivationSymmetric": True,  # zero points of 0: what TensorRT's explicit quantisation requires
        "WeightSymmetric": True,
        # In QDQ form the quantiser otherwise also rounds each MatMul's output (before its bias is added).
        "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"],
    }
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    projections = set(projection_nodes(graph)) - set(keep_fp32)  # attention scores and context stay fp32
    ort_static(
        str(model_path), str(out_path), reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_quantize=sorted(projections),
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(keep_fp32),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=extra,
    )


def _quantize_nncf(model_path: Path, out_path: Path, reader: FeedReader, keep_fp32: Sequence[str]) -> None:
    try:
        import nncf
    except ImportError as exc:
        raise MissingDependencyError(
            "static int8 method 'nncf' needs NNCF: pip install 'distilrt[export]' (or pip install nncf), "
            "or choose an ONNX Runtime method"
        ) from exc
    import onnx

    logging.getLogger("nncf").setLevel(logging.ERROR)  # progress chatter; the exporter reports its own steps
    model = onnx.load(str(model_path))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress bars
        quantized = nncf.quantize(
            model,
            nncf.Dataset(list(reader)),
            model_type=nncf.ModelType.TRANSFORMER,  # SmoothQuant on, attention softmax and layer norms left alone
            subset_size=len(reader),
            fast_bias_correction=True,
            # Embedding tables get the exporter's own treatment (quantize_embeddings: the word table
            # int8 by row, the small position and type tables left fp32), as with every method.
            ignored_scope=nncf.IgnoredScope(names=[*keep_fp32, *activation_products(model.graph)], types=["Gather"],
                                            validate=False),
        )
    onnx.save(quantized, str(out_path))


def quantize_embeddings(model: Any) -> int:
    """Store each large Gather table of ``model`` (the word embeddings) as int8 with one symmetric scale per row.

    The table is read through a ``DequantizeLinear`` (axis 0), an ONNX operator every engine folds or
    runs.  Returns how many tables were converted.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    converted = 0
    for node in list(graph.node):
        if node.op_type != "Gather" or node.input[0] not in initializers or users.get(node.input[0]) != 1:
            continue
        table = numpy_helper.to_array(initializers[node.input[0]])
        if table.dtype != np.float32 or table.ndim != 2 or table.size < MIN_EMBEDDING_ELEMENTS:
            continue
        scale = np.maximum(np.abs(table).max(axis=1), 1e-12) / 127.0
        q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
        base = node.input[0]
        graph.initializer.remove(initializers[base])
        graph.initializer.extend([numpy_helper.from_array(q, f"{base}_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), f"{base}_scale"),
                                  numpy_helper.from_array(np.zeros(table.shape[0], np.int8), f"{base}_zero_point")])
        dq = helper.make_node("DequantizeLinear", [f"{base}_int8", f"{base}_scale", f"{base}_zero_point"],
                              [f"{base}_dequantized"], name=f"{base}_DequantizeLinear", axis=0)
        graph.node.insert(list(graph.node).index(node), dq)
        node.input[0] = f"{base}_dequantized"
        converted += 1
    return converted


def describe_graph(model_path: Path) -> dict[str, Any]:
    """Opset, operator domains and counts of a QDQ graph, for the manifest and for checks."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    nodes = model.graph.node
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {
        "opset": opset,
        "domains": sorted({n.domain or "ai.onnx" for n in nodes}),
        "quantize_linear": sum(n.op_type == "QuantizeLinear" for n in nodes),
        "dequantize_linear": sum(n.op_type == "DequantizeLinear" for n in nodes),
    }


def fp32_nodes_pattern(names: Sequence[str]) -> str:
    """A readable summary of kept-fp32 node names for notes (layer numbers kept, the rest shortened)."""
    return ", ".join(re.sub(r"^/", "", name).replace("/MatMul", "") for name in names) or "none"
