"""The two fp16 graphs: ONNX Runtime's fused graph for CUDA keeps its fused operators in fp16 (no fp32
Casts around them); the standard-operator graph for TensorRT keeps LayerNormalization in fp32 and is made
of standard ONNX operators only.  Both pass the fp16 parity check on the CPU provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilrt.export.fp16 import CUDA_FP16_FUSED_OPS, convert_fp16
from distilrt.runtime.graphinfo import graph_ops, nonstandard_ops
from distilrt.runtime.tensorrt import graph_problem


@pytest.fixture(scope="module")
def fp16_graphs(make_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from distilrt.export.convert import export_fp32
    from distilrt.export.load import resolve_checkpoint
    from distilrt.export.optimize import fuse
    from distilrt.export.validate import reference_batches

    work = tmp_path_factory.mktemp("fp16")
    checkpoint = resolve_checkpoint(str(make_checkpoint("distilbert-qa-uncased")), task="auto")
    plain = export_fp32(checkpoint, work / "fp32")
    fused_ops = fuse(plain, work / "fused_gpu.onnx", checkpoint.config, for_cpu=False)
    assert fused_ops.get("Attention") and fused_ops.get("SkipLayerNormalization")
    out = {"checkpoint": checkpoint, "batches": reference_batches(checkpoint)}
    for name, source in (("standard", plain), ("fused", work / "fused_gpu.onnx")):
        out[name] = work / f"fp16_{name}.onnx"
        out[f"{name}_kept"] = convert_fp16(source, out[name])
    return out


def _fed_by_fp32_cast(path: Path) -> dict[str, list[bool]]:
    """op_type -> for each node, whether its first input comes from a Cast to float32."""
    import onnx

    graph = onnx.load(str(path)).graph
    casts = {node.output[0] for node in graph.node
             if node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)}
    found: dict[str, list[bool]] = {}
    for node in graph.node:
        found.setdefault(node.op_type, []).append(bool(node.input) and node.input[0] in casts)
    return found


def test_cuda_graph_keeps_fused_operators_in_fp16(fp16_graphs) -> None:
    fed = _fed_by_fp32_cast(fp16_graphs["fused"])
    fused_here = [op for op in CUDA_FP16_FUSED_OPS if op in fed]
    assert {"Attention", "SkipLayerNormalization"} <= set(fused_here)
    for op in fused_here:
        assert not any(fed[op]), f"{op} is wrapped in fp32 Casts"
    assert not set(fp16_graphs["fused_kept"]) & set(CUDA_FP16_FUSED_OPS)


def test_tensorrt_graph_is_standard_with_layernorm_in_fp32(fp16_graphs) -> None:
    path = fp16_graphs["standard"]
    assert nonstandard_ops(graph_ops(path)) == [] and graph_problem(graph_ops(path), "fp16") is None
    fed = _fed_by_fp32_cast(path)
    assert fed["LayerNormalization"] and all(fed["LayerNormalization"])  # fp32 between the graph's own Casts
    assert "LayerNormalization" in fp16_graphs["standard_kept"]
    assert not any(fed["Softmax"])  # fp16, so that TensorRT can fuse attention


@pytest.mark.parametrize("name", ["standard", "fused"])
def test_both_pass_the_fp16_parity_check_on_cpu(fp16_graphs, name: str) -> None:
    from distilrt.export.validate import check_variant

    figures = check_variant("fp16", fp16_graphs[name], fp16_graphs["checkpoint"], fp16_graphs["batches"])
    assert 0 < max(figures["max_abs_diff"].values()) <= 1e-2
