"""int8: dynamic, per-channel weight quantisation with named presets (one default for every machine)."""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizationPreset:
    """How int8 weights are made.  Activations are quantised to uint8 at run time (dynamic)."""

    name: str
    weight_type: str = "QInt8"  # u8 activations x s8 weights: the VNNI / NEON dot-product path
    per_channel: bool = True
    reduce_range: bool = False
    # "Gather": the word-embedding table in int8 too (DistilBERT: 94 MB fp32).  Same speed, half the
    # bundle file (138 -> 67 MB) and half the session's peak RSS (284 -> 145 MB) on full-size DistilBERT.
    operators: tuple[str, ...] = field(default=("MatMul", "Attention", "Gather"))
    # Regexes of node names left in fp32.  Empty: quantise every matching operator.
    keep_fp32: tuple[str, ...] = ()
    # Also quantise MatMuls whose inputs are both activations: the attention scores (Q K^T) and context
    # (P V) of a graph without a fused Attention node.  Measured on full-size DistilBERT (one thread,
    # CPU time): 39.0 vs 42.3 ms at 1x128, 138 vs 143 ms at 1x384, 302 vs 340 ms at 8x128 against the
    # fused QAttention graph; the accuracy fallbacks leave them in fp32.
    activation_matmuls: bool = True

    @classmethod
    def avx512_vnni(cls) -> "QuantizationPreset":
        return cls("avx512_vnni")

    @classmethod
    def avx2(cls) -> "QuantizationPreset":
        # Without VNNI, u8 x s8 goes through vpmaddubsw, whose int16 sums saturate; 7-bit weights avoid it.
        return cls("avx2", reduce_range=True)

    @classmethod
    def arm64(cls) -> "QuantizationPreset":
        return cls("arm64")

    @classmethod
    def default(cls) -> "QuantizationPreset":
        """What export uses unless told otherwise, on any machine: u8 activations x s8 per-channel weights
        at full range, the form VNNI, AMX and ARM dot-product kernels run.

        The bundle must not depend on the exporting CPU.  Hosts with only AVX2 (no VNNI) can lose accuracy
        to vpmaddubsw's saturating int16 sums; export for them with ``quantization=QuantizationPreset.avx2()``.
        """
        return cls.avx512_vnni()

    def keeping_ffn_down_fp32(self) -> "QuantizationPreset":
        """The same preset with each FFN down-projection in fp32.

        Those MatMuls read the GELU output, whose few large activations stretch the dynamic uint8 range
        so that the rest quantise coarsely (measured on all-MiniLM-L6-v2: embedding cosine 0.987 -> 0.992).
        """
        return replace(self, keep_fp32=FFN_DOWN_PROJECTIONS, activation_matmuls=False)

    def keeping_attention_and_ffn_down_fp32(self) -> "QuantizationPreset":
        """FFN down-projections, the fused QKV attention and the embeddings in fp32: the most accurate fallback.

        The flash-attention graph holds its QKV projections as plain MatMuls, kept by name.
        """
        return replace(self, keep_fp32=FFN_DOWN_PROJECTIONS + FLASH_QKV_PROJECTIONS, activation_matmuls=False,
                       operators=tuple(o for o in self.operators if o not in ("Attention", "Gather")))

    def accuracy_ladder(self) -> tuple[tuple[str, "QuantizationPreset"], ...]:
        """This preset and its fallbacks, fastest (most int8) first, each with a short tag."""
        return (
            ("", self),
            ("+ffn-down-fp32", self.keeping_ffn_down_fp32()),
            ("+ffn-down+qkv-fp32", self.keeping_attention_and_ffn_down_fp32()),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = list(self.operators)
        data["keep_fp32"] = list(self.keep_fp32)
        return data


#: FFN down-projection MatMuls: BERT/RoBERTa ``layer.N/output/dense``, DistilBERT ``layer.N/ffn/lin2``.
FFN_DOWN_PROJECTIONS: tuple[str, ...] = (r"layer\.\d+/output/dense/MatMul$", r"layer\.\d+/ffn/lin2/MatMul$")
#: The Q, K and V projection MatMuls that ``attention.rewrite_for_flash_attention`` makes of a fused Attention.
FLASH_QKV_PROJECTIONS: tuple[str, ...] = (r"^flash_attention/.+/[qkv]/MatMul$",)


def quantize(model_path: Path, out_path: Path, preset: QuantizationPreset) -> None:
    import onnx

    excluded: list[str] = []
    if preset.keep_fp32:
        patterns = [re.compile(p) for p in preset.keep_fp32]
        graph = onnx.load(str(model_path), load_external_data=False).graph
        excluded = [n.name for n in graph.node if any(p.search(n.name) for p in patterns)]
    # The quantiser logs a pre-processing suggestion on the root logger for every call; it does not
    # apply to transformer graphs, so keep it out of the user's terminal.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with tempfile.TemporaryDirectory(prefix="distilrt-quantize-") as tmp:
            folded = fold_weight_transposes(model_path, Path(tmp) / "folded.onnx")
            _quantize_dynamic(folded or model_path, out_path, preset, excluded)
    finally:
        root.setLevel(level)


def fold_weight_transposes(model_path: Path, out_path: Path) -> Path | None:
    """Replace each ``Transpose(initializer)`` with a transposed initializer; None if there is none.

    A masked-LM head tied to the word embeddings reads the table through a Transpose.  The quantiser
    sees a non-constant MatMul input there, so it would leave the vocabulary projection in fp32 or,
    with activation MatMuls on, re-quantise the whole table on every run (and dequantise it too once
    the embedding Gather is int8): 21 of 34 ms per call on full-size DistilBERT-MLM at 24 tokens.
    Folded, the head gets its own per-channel int8 weight like every other projection.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    folded = []
    for node in graph.node:
        if node.op_type != "Transpose" or node.input[0] not in initializers:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        array = numpy_helper.to_array(initializers[node.input[0]])
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(np.transpose(array, perm)),
                                                         node.output[0]))
        folded.append(node)
    if not folded:
        return None
    for node in folded:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)  # the untransposed table, if nothing else reads it
    onnx.save(model, str(out_path))
    return out_path


def _quantize_dynamic(model_path: Path, out_path: Path, preset: QuantizationPreset, excluded: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(model_path),
        str(out_path),
        per_channel=preset.per_channel,
        reduce_range=preset.reduce_range,
        weight_type=getattr(QuantType, preset.weight_type),
        op_types_to_quantize=list(preset.operators),
        nodes_to_exclude=excluded,
        # Fused graphs carry com.microsoft ops whose output types the quantiser cannot infer.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": not preset.activation_matmuls},
    )
