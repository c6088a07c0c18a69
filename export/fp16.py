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
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(model_path)))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    model.convert_float_to_float16(keep_io_types=True, op_block_list=block)
    model.save_model_to_file(str(out_path))
    return list(FP32_OPS)
