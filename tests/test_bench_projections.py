"""The projection forms timed by ``python -m distilrt.benchmarks.projections`` compute the same projection."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from distilrt.benchmarks import projections
from distilrt.benchmarks.projections import FORMS, STATIC_SCALE, STATIC_ZERO, projection_graph, projection_input

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
    projections.main(["--tokens", "2", "--seconds", "0.001", "--threads", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert all(form in lines[1] for form in FORMS)
    rows = [line for line in lines[2:] if line.strip()]
    assert [row.split()[0] for row in rows] == ["2x768x768", "2x768x3072", "2x3072x768"]
    assert all(len(row.split("/s")) == len(FORMS) + 1 for row in rows)


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        projections.main(["--tokens", "0"])
