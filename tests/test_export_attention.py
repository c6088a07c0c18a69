"""Flash-attention rewrite: same outputs as the fused Attention node, no mask input left, int8-quantisable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from distilrt.export.attention import rewrite_for_flash_attention  # noqa: E402

HIDDEN, HEADS, LAYERS = 32, 4, 2


def _attention_graph(path: Path, *, mask_input: str = "attention_mask", extra_attrs: dict | None = None) -> None:
    """Two stacked com.microsoft Attention layers over x, masked by a [batch, seq] int64 padding mask."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    initializers, nodes = [], [helper.make_node("Cast", [mask_input], ["mask_int32"], to=TensorProto.INT32,
                                                name="mask/Cast")]
    current = "x"
    for layer in range(LAYERS):
        w, b = f"layer{layer}/qkv_weight", f"layer{layer}/qkv_bias"
        # weights scaled like a trained layer's (unit-variance projections), so attention is not one-hot
        weight = rng.standard_normal((HIDDEN, 3 * HIDDEN)) / np.sqrt(HIDDEN)
        initializers += [numpy_helper.from_array(weight.astype(np.float32), w),
                         numpy_helper.from_array(rng.standard_normal(3 * HIDDEN).astype(np.float32), b)]
        nodes.append(helper.make_node("Attention", [current, w, b, "mask_int32"], [f"layer{layer}/out"],
                                      domain="com.microsoft", num_heads=HEADS, name=f"Attention_{layer}",
                                      **(extra_attrs or {})))
        current = f"layer{layer}/out"
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN]),
         helper.make_tensor_value_info(mask_input, TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", "seq", HIDDEN])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    onnx.save(model, str(path))


def _feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    mask = np.ones((3, 11), dtype=np.int64)
    mask[1, 6:] = 0  # padded rows of different lengths
    mask[2, 2:] = 0
    return {"x": rng.standard_normal((3, 11, HIDDEN)).astype(np.float32), "attention_mask": mask}


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_rewrite_matches_fused_attention_on_padded_batches(tmp_path: Path) -> None:
    _attention_graph(tmp_path / "fused.onnx")
    assert rewrite_for_flash_attention(tmp_path / "fused.onnx", tmp_path / "flash.onnx") == LAYERS
    feeds = _feeds()
    expected, got = _run(tmp_path / "fused.onnx", feeds), _run(tmp_path / "flash.onnx", feeds)
    real = feeds["attention_mask"].astype(bool)
    # padding keys get no weight: real tokens' outputs match to float rounding
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-4, atol=1e-4)
    # and the padding really is masked: changing a padded position's input changes no real token's output
    feeds["x"][1, 8] += 100.0
    np.testing.assert_allclose(_run(tmp_path / "flash.onnx", feeds)[real], got[real], rtol=1e-5, atol=1e-5)


def test_rewrite_leaves_no_mask_input_and_no_dead_nodes(tmp_path: Path) -> None:
    _attention_graph(tmp_path / "fused.onnx")
    rewrite_for_flash_attention(tmp_path / "fused.onnx", tmp_path / "flash.onnx")
    graph = onnx.load(str(tmp_path / "flash.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert "Attention" not in ops and ops.count("MultiHeadAttention") == LAYERS
    # no key_padding_mask / attention_bias input: the CPU kernel's flash path needs exactly q, k, v
    assert all(len(n.input) == 3 for n in graph.node if n.op_type == "MultiHeadAttention")
    assert "mask/Cast" not in {n.name for n in graph.node}  # the old mask computation is gone
    initializers = {i.name for i in graph.initializer}
    assert not any(name.endswith("qkv_weight") for name in initializers)
    widths = {int(i.dims[1]) for i in graph.initializer if i.name.endswith(("q_weight", "k_weight"))}
    assert widths == {HIDDEN + HEADS}  # one extra component per head


def test_rewritten_graph_quantises_to_int8_projections(tmp_path: Path) -> None:
    from distilrt.export.quantize import QuantizationPreset, quantize

    _attention_graph(tmp_path / "fused.onnx")
    rewrite_for_flash_attention(tmp_path / "fused.onnx", tmp_path / "flash.onnx")
    quantize(tmp_path / "flash.onnx", tmp_path / "int8.onnx", QuantizationPreset.avx512_vnni())
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert "MatMul" not in ops and ops.count("MultiHeadAttention") == LAYERS
    feeds = _feeds()
    real = feeds["attention_mask"].astype(bool)
    expected, got = _run(tmp_path / "fused.onnx", feeds)[real], _run(tmp_path / "int8.onnx", feeds)[real]
    assert np.abs(got - expected).mean() < 0.05 * np.abs(expected).mean()


@pytest.mark.parametrize("case", ["no-attention", "no-mask-input", "unidirectional"])
def test_rewrite_declines_graphs_it_does_not_understand(tmp_path: Path, case: str) -> None:
    from onnx import TensorProto, helper

    if case == "no-attention":
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "fused.onnx"))
    elif case == "no-mask-input":
        _attention_graph(tmp_path / "fused.onnx", mask_input="input_mask")
    else:
        _attention_graph(tmp_path / "fused.onnx", extra_attrs={"unidirectional": 1})
    assert rewrite_for_flash_attention(tmp_path / "fused.onnx", tmp_path / "flash.onnx") == 0
    assert not (tmp_path / "flash.onnx").exists()


@pytest.mark.parametrize("name", ["distilbert-qa-uncased", "roberta-mlm"])
def test_real_export_fuses_for_cpu_and_rewrites(make_checkpoint, tmp_path: Path, name: str) -> None:
    """On an exported transformer graph: the CPU fusion set, then the rewrite, keep the outputs."""
    from distilrt.export.convert import export_fp32
    from distilrt.export.load import resolve_checkpoint
    from distilrt.export.optimize import fuse

    checkpoint = resolve_checkpoint(str(make_checkpoint(name)))
    plain = export_fp32(checkpoint, tmp_path / "fp32")
    cpu_ops = fuse(plain, tmp_path / "cpu.onnx", checkpoint.config, for_cpu=True)
    gpu_ops = fuse(plain, tmp_path / "gpu.onnx", checkpoint.config)
    assert cpu_ops.get("Attention") and gpu_ops.get("Attention")
    left_out = {"SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"}
    assert not left_out & set(cpu_ops) and left_out & set(gpu_ops)
    assert rewrite_for_flash_attention(tmp_path / "cpu.onnx", tmp_path / "flash.onnx") == cpu_ops["Attention"]

    rng = np.random.default_rng(0)
    mask = np.ones((2, 9), dtype=np.int64)
    mask[1, 4:] = 0
    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": rng.integers(5, 90, mask.shape), "attention_mask": mask}
    feeds = {i.name: feeds.get(i.name, np.zeros_like(mask)) for i in session.get_inputs()}
    expected = session.run(None, feeds)[0]
    got = _run(tmp_path / "flash.onnx", feeds)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-4, atol=1e-4)
