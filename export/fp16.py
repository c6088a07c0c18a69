"""fp16: half-precision weights and compute, fp32 inputs and outputs.

Two fp16 graphs, for two kinds of engine:

- from ONNX Runtime's GPU-fused graph, for the CUDA provider: the fused operators (Attention,
  SkipLayerNormalization, LayerNormalization, EmbedLayerNormalization, BiasGelu / FastGelu / Gelu) stay
  in fp16.  ONNX Runtime's CUDA provider has fp16 kernels for each of them that accumulate in fp32
  internally, so wrapping them in fp32 Casts would only add two cast kernels per normalisation
  (37 extra kernels per forward pass on a 6-layer encoder) and read the activations at twice the width.
- from the plain export (standard ONNX operators only), for TensorRT and any other engine: precision is
  in the graph, which is what TensorRT 11's strongly typed networks build from.  LayerNormalization
  stays fp32 between Casts: TensorRT runs a strongly typed layer in exactly the type the graph gives it,
  and its own documentation warns that LayerNorm after attention may overflow in fp16.  Softmax stays
  fp16 so that TensorRT can fuse MatMul-Softmax-MatMul into one attention kernel (it accumulates in fp32).

In both, a LayerNorm left decomposed (ReduceMean, Pow, Sqrt) keeps its reductions in fp32: summing
squares of 768 activations in fp16 overflows.  Validation runs on the CPU provider, which has no fp16
kernel for several of these operators; there ONNX Runtime inserts Casts and computes them in fp32, so the
CPU parity check covers the fp16 weights and every operator the CPU runs in fp16, not the fp16
numerics of the GPU-only kernels (those are measured by ``scripts/gpu_check.py`` on a GPU).
"""

from __future__ import annotations

from pathlib import Path

#: Kept fp32 in every fp16 graph: the reductions of a LayerNorm left decomposed.
DECOMPOSED_NORM_OPS: tuple[str, ...] = ("ReduceMean", "Pow", "Sqrt")
#: Kept fp32 in the standard-operator graph (TensorRT and other engines).
STANDARD_FP32_OPS: tuple[str, ...] = ("LayerNormalization", *DECOMPOSED_NORM_OPS)
#: ONNX Runtime fused operators with CUDA fp16 kernels: left in fp16 in the fused graph.
CUDA_FP16_FUSED_OPS: tuple[str, ...] = (
    "Attention", "MultiHeadAttention", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
    "LayerNormalization", "SimplifiedLayerNormalization", "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu",
)
_STANDARD_DOMAINS = ("", "ai.onnx")


def fp32_ops_for(model: object) -> tuple[str, ...]:
    """The operator types kept in fp32 for ``model`` (an ``onnx.ModelProto``): fused graphs are for CUDA."""
    fused = any(node.domain not in _STANDARD_DOMAINS for node in model.graph.node)  # type: ignore[attr-defined]
    return DECOMPOSED_NORM_OPS if fused else STANDARD_FP32_OPS


def convert_fp16(model_path: Path, out_path: Path) -> list[str]:
    """Write ``model_path`` as fp16 to ``out_path``; return the operator types of the graph kept in fp32.

    Which operators stay fp32 follows from the graph: ONNX Runtime's fused graph keeps its fused
    operators in fp16 (CUDA), a standard-operator graph keeps LayerNormalization in fp32 (TensorRT).
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(model_path)))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(fp32_ops_for(model.model)))
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
