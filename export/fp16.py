"""fp16: half-precision weights and compute, fp32 inputs and outputs."""

from __future__ import annotations

from pathlib import Path

# Normalisations and softmax reduce over many values: in fp16 their sums overflow or lose the small
# terms, so they stay fp32 (with casts around them).  Fused attention keeps its softmax in fp32 itself.
FP32_OPS: tuple[str, ...] = (
    "LayerNormalization",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "SimplifiedLayerNormalization",
    "Softmax",
    "ReduceMean",
    "Pow",
    "Sqrt",
)


def convert_fp16(model_path: Path, out_path: Path) -> list[str]:
    """Write ``model_path`` as fp16 to ``out_path``; return the operator types of the graph kept in fp32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(model_path)))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    kept = sorted({node.op_type for node in model.model.graph.node} & set(block))
    _untie_initializers(model.model.graph, set(block))
    model.convert_float_to_float16(keep_io_types=True, op_block_list=block)
    model.save_model_to_file(str(out_path))
    return kept


def _untie_initializers(graph, fp32_ops: set[str]) -> None:  # onnx.GraphProto
    """Give each fp32-kept consumer of a shared initializer its own copy.

    The converter inserts one cast per (initializer, kept node) and names it after the initializer,
    so an initializer shared by two kept nodes (tied or deduplicated weights) yields two nodes with
    the same name and an invalid model.
    """
    import onnx

    initializers = {init.name: init for init in graph.initializer}
    kept_uses: dict[str, int] = {}
    for node in graph.node:
        if node.op_type not in fp32_ops:
            continue
        for index, name in enumerate(node.input):
            if name not in initializers:
                continue
            kept_uses[name] = kept_uses.get(name, 0) + 1
            if kept_uses[name] > 1:  # the first kept consumer keeps the original
                copy = onnx.TensorProto()
                copy.CopyFrom(initializers[name])
                copy.name = f"{name}__untied{kept_uses[name]}"
                graph.initializer.append(copy)
                node.input[index] = copy.name
