"""int8 presets: activation x activation MatMuls and embedding tables are quantised, except in fallbacks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from distilrt.export.quantize import QuantizationPreset, quantize  # noqa: E402


def _graph(path: Path) -> None:
    """x @ W (a weight MatMul) then (x W) @ (x W)^T (an activation x activation MatMul, like Q K^T)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="proj/MatMul"),
        helper.make_node("Transpose", ["h"], ["hT"], perm=[1, 0], name="t"),
        helper.make_node("MatMul", ["h", "hT"], ["y"], name="scores/MatMul"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _float_matmuls(path: Path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul"]


def test_default_preset_quantises_activation_matmuls(tmp_path: Path) -> None:
    _graph(tmp_path / "g.onnx")
    preset = QuantizationPreset.avx512_vnni()
    assert preset.activation_matmuls
    quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", preset)
    assert _float_matmuls(tmp_path / "q.onnx") == []


def test_accuracy_fallbacks_keep_activation_matmuls_fp32(tmp_path: Path) -> None:
    _graph(tmp_path / "g.onnx")
    for _, preset in QuantizationPreset.avx512_vnni().accuracy_ladder()[1:]:
        assert not preset.activation_matmuls
        quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", preset)
        assert _float_matmuls(tmp_path / "q.onnx") == ["scores/MatMul"]


def _embedding_graph(path: Path) -> None:
    """A word-embedding lookup: Gather(table, ids)."""
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["y"], name="embeddings/Gather")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _table_type(path: Path) -> int:
    graph = onnx.load(str(path)).graph
    gather = next(n for n in graph.node if n.op_type == "Gather")
    return next(i.data_type for i in graph.initializer if i.name == gather.input[0])


def test_embeddings_int8_except_in_the_most_accurate_fallback(tmp_path: Path) -> None:
    _embedding_graph(tmp_path / "g.onnx")
    ladder = QuantizationPreset.avx512_vnni().accuracy_ladder()
    quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", ladder[0][1])
    assert _table_type(tmp_path / "q.onnx") in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", ladder[-1][1])
    assert _table_type(tmp_path / "q.onnx") == onnx.TensorProto.FLOAT


def test_tied_lm_head_gets_a_constant_int8_weight(tmp_path: Path) -> None:
    """Gather(table) for the embeddings and MatMul(h, Transpose(table)) for a tied vocabulary head."""
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["h"], name="embeddings/Gather"),
             helper.make_node("Transpose", ["table"], ["tableT"], perm=[1, 0], name="head/Transpose"),
             helper.make_node("MatMul", ["h", "tableT"], ["logits"], name="head/MatMul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, 100])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "g.onnx"))
    quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", QuantizationPreset.avx512_vnni())
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    # No per-run work on the whole table: it is neither transposed, dequantised nor re-quantised.
    assert "Transpose" not in ops and "MatMul" not in ops
    assert not any(n.op_type == "DequantizeLinear" and n.input[0].startswith("table")
                   for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)

    import onnxruntime as ort

    ids = np.arange(8, dtype=np.int64).reshape(1, 8)
    expected = ort.InferenceSession(str(tmp_path / "g.onnx")).run(None, {"ids": ids})[0]
    got = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"ids": ids})[0]
    assert np.argmax(got, -1).tolist() == np.argmax(expected, -1).tolist()


def test_activation_matmuls_off_keeps_attention_matmuls_fp32(tmp_path: Path) -> None:
    _graph(tmp_path / "g.onnx")
    preset = QuantizationPreset.avx512_vnni()
    quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", replace(preset, activation_matmuls=False))
    assert _float_matmuls(tmp_path / "q.onnx") == ["scores/MatMul"]  # the weight MatMul is still int8
    # every accuracy fallback keeps them in fp32
    assert [level.activation_matmuls for _, level in preset.accuracy_ladder()] == [True, False, False]


def test_default_preset_is_the_same_on_every_machine() -> None:
    assert QuantizationPreset.default() == QuantizationPreset.avx512_vnni()
    assert not QuantizationPreset.default().reduce_range
