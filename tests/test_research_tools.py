"""The development instruments in research/: the projection forms of ``python -m research.projections`` compute the
same projection, and ``python -m research.compare`` times each candidate it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from research import projections
from research.projections import FORMS, STATIC_SCALE, STATIC_ZERO, projection_graph, projection_input

M, K, N = 8, 64, 32


def _run(form: str, a: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(projection_graph(form, K, N).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"A": a})[0]


def _weights() -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in projection_graph("int8-dynamic", K, N).graph.initializer}


def test_every_form_computes_the_same_projection() -> None:
    w = _weights()
    a = projection_input("fp32", M, K)
    expected = a @ (w["W"].astype(np.float32) * w["W_scale"]) + w["bias"]
    np.testing.assert_allclose(_run("fp32", a), expected, rtol=1e-5, atol=1e-4)
    # Quantising the input (within [-1, 1], 255 steps) moves each product by at most half a step.
    bound = 0.5 * STATIC_SCALE * np.abs(w["W"].astype(np.float32) * w["W_scale"]).sum(axis=0).max()
    for form in ("int8-dynamic", "int8-static"):
        error = np.abs(_run(form, a) - expected).max()
        assert 0 < error <= bound, (form, error, bound)


def test_integer_kernel_is_exact() -> None:
    a = projection_input("int8-kernel", M, K)
    assert a.dtype == np.uint8
    expected = a.astype(np.int64) @ _weights()["W"].astype(np.int64)
    np.testing.assert_array_equal(_run("int8-kernel", a), expected)


def test_static_form_uses_the_fixed_input_quantisation() -> None:
    graph = projection_graph("int8-static", K, N).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert [n.op_type for n in graph.node] == ["QuantizeLinear", "MatMulIntegerToFloat"]
    assert float(values["A_scale"]) == pytest.approx(STATIC_SCALE) and int(values["A_zero"]) == STATIC_ZERO


def test_unknown_form_is_rejected() -> None:
    with pytest.raises(ValueError, match="int8-dynamic"):
        projection_graph("int4", K, N)


def test_cli_prints_every_form_and_shape(capsys: pytest.CaptureFixture[str]) -> None:
    projections.main(["--tokens", "2", "--seconds", "0.001", "--threads", "1", "--blocks", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert all(form in lines[1] for form in FORMS)
    rows = lines[2:5]
    assert [row.split()[0] for row in rows] == ["2x768x768", "2x768x3072", "2x3072x768"]
    assert all(len(row.split("/s")) == len(FORMS) + 1 for row in rows)
    stack = [line.split() for line in lines[lines.index("") + 3:]]
    assert [(row[0], row[1]) for row in stack] == [("2", form) for form in projections.STACK_FORMS]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in stack)


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        projections.main(["--tokens", "0"])


def _stack_weights(seed: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in projection_graph("fp32", k, n, seed=seed).graph.initializer}
    return values["W"], values["bias"]


@pytest.mark.parametrize("distinct", [True, False])
def test_ffn_stack_chains_the_blocks_weights(distinct: bool) -> None:
    hidden, inner, blocks = 16, 32, 3
    model = projections.ffn_stack_graph("fp32", blocks, distinct=distinct, hidden=hidden, inner=inner)
    weight_sets = {i.name.split("_")[0] for i in model.graph.initializer}
    assert len(weight_sets) == (2 * blocks if distinct else 2)
    a = projection_input("fp32", 4, hidden)
    expected = a
    for block in range(blocks):
        for part, (k, n) in enumerate(((hidden, inner), (inner, hidden))):
            w, b = _stack_weights(2 * block + part if distinct else part, k, n)
            expected = expected @ w + b
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"A": a})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_ffn_stack_of_dynamic_int8_runs_and_integer_kernel_is_refused() -> None:
    model = projections.ffn_stack_graph("int8-dynamic", 2, distinct=True, hidden=16, inner=32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"A": projection_input("int8-dynamic", 4, 16)})[0].shape == (4, 16)
    with pytest.raises(ValueError, match="float outputs"):
        projections.ffn_stack_graph("int8-kernel", 2, distinct=True)


def test_compare_parses_candidates_and_times_each(make_bundle, capsys) -> None:
    from research.compare import Candidate, main

    assert Candidate.parse("a/model.onnx") == Candidate("model", Path("a/model.onnx"), None)
    assert Candidate.parse("base=m.onnx:none") == Candidate("base", Path("m.onnx"), ())
    assert Candidate.parse("x=m.onnx:SkipLayerNormFusion,GeluFusion").disabled == ("SkipLayerNormFusion", "GeluFusion")
    model = make_bundle("distilbert-qa-uncased") / "onnx" / "model_quantized.onnx"
    assert main([f"default={model}", f"every-rewrite={model}:none", "--shape", "1x16", "--shape", "2x8",
                 "--rounds", "1", "--runs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["1x16", "2x8"]
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[1:]}
    assert set(rows) == {"default", "every-rewrite"} and all(len(v) == 2 and min(v) > 0 for v in rows.values())
    with pytest.raises(SystemExit):
        main([str(model), "--shape", "1by16"])
