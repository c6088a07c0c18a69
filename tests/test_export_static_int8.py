"""Static int8 (calibrated QDQ): the variant is exported, recorded, standard, runnable, and batch-independent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from distilrt.export import textset
from distilrt.runtime import pipeline

QUESTIONS = [
    ("Where does the Rhine rise?", "The Rhine rises in the Swiss Alps and flows to the North Sea."),
    ("Who won?", "Grace Wanjiru won the city marathon on Sunday, breaking the course record by almost a minute, "
                 "after pulling away from the leading group at the thirty-kilometre mark."),
    ("What colour?", "Blue."),
]


def test_manifest_records_the_static_variant(static_bundle: Path) -> None:
    """(``static_bundle``: tests/conftest.py, ONNX Runtime calibration, no fallback.)"""
    manifest = json.loads((static_bundle / "manifest.json").read_text())
    variant = manifest["variants"]["int8-static"]
    assert variant["details"]["attention_products"] == "float"
    assert variant["file"] == "onnx/model_qdq.onnx"
    assert (static_bundle / variant["file"]).stat().st_size == variant["bytes"]
    details = variant["details"]
    assert details["format"] == "QDQ" and details["method"] == "ort-minmax"
    assert details["calibration"] == {"source": "built-in", "count": textset.DEFAULT_SIZE, "method": "ort-minmax"}
    agreement = variant["parity"]["agreement"]
    assert agreement["items"] >= 200 and 0.0 <= agreement["span_agreement"] <= 1.0
    assert agreement["target_met"] == (agreement["span_agreement"] >= agreement["target"]["span_agreement"])
    assert details["target_met"] == agreement["target_met"]
    # Every reduced precision carries evaluation-set figures, fp32 (the reference's twin) none.
    assert manifest["variants"]["fp16"]["parity"]["agreement"]["items"] >= 200
    assert "agreement" not in manifest["variants"]["fp32"]["parity"]


def test_qdq_graph_is_standard_onnx(static_bundle: Path) -> None:
    model = onnx.load(str(static_bundle / "onnx" / "model_qdq.onnx"))
    onnx.checker.check_model(model)
    domains = {node.domain or "ai.onnx" for node in model.graph.node}
    assert domains == {"ai.onnx"}, f"non-standard operator domains {domains - {'ai.onnx'}}"
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13
    producers = {o: n for n in model.graph.node for o in n.output}
    initializers = {i.name for i in model.graph.initializer}
    arrays = {i.name: i for i in model.graph.initializer}
    projections = [n for n in model.graph.node if n.op_type == "MatMul" and producers.get(n.input[1]) is not None
                   and producers[n.input[1]].op_type == "DequantizeLinear" and producers[n.input[1]].input[0] in initializers]
    assert len(projections) >= 6 * 2, "fewer MatMuls read an int8 weight than the two layers have projections"
    for node in projections:
        weight = producers[node.input[1]]
        assert onnx.numpy_helper.to_array(arrays[weight.input[0]]).dtype == np.int8
        activation = producers[node.input[0]]
        assert activation.op_type == "DequantizeLinear" and producers[activation.input[0]].op_type == "QuantizeLinear"
    # The word embeddings are int8 too (one scale per row).
    gathers = [n for n in model.graph.node if n.op_type == "Gather" and producers.get(n.input[0]) is not None
               and producers[n.input[0]].op_type == "DequantizeLinear"]
    assert gathers


def test_pipeline_runs_int8_static_on_onnxruntime_cpu(static_bundle: Path) -> None:
    static = pipeline(model=static_bundle, precision="int8-static", provider="cpu")
    fp32 = pipeline(model=static_bundle, precision="fp32", provider="cpu")
    assert static.precision == "int8-static"
    answers = static([{"question": q, "context": c} for q, c in QUESTIONS])
    reference = fp32([{"question": q, "context": c} for q, c in QUESTIONS])
    for got, ref, (_, context) in zip(answers, reference, QUESTIONS):
        assert set(got) == {"score", "start", "end", "answer"}
        assert context[got["start"]:got["end"]] == got["answer"]
        assert 0.0 <= got["score"] <= 1.0 and np.isfinite(ref["score"])


def test_static_outputs_do_not_depend_on_the_batch(static_bundle: Path) -> None:
    """One sequence alone and inside batches of other texts (padded to their length) gives the same bits."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(static_bundle))
    session = ort.InferenceSession(str(static_bundle / "onnx" / "model_qdq.onnx"), providers=["CPUExecutionProvider"])
    alone = tokenizer([QUESTIONS[0][0]], [QUESTIONS[0][1]], return_tensors="np")
    base = session.run(None, {k: v.astype(np.int64) for k, v in alone.items()})
    n = alone["input_ids"].shape[1]
    for others in ([QUESTIONS[1]], [QUESTIONS[1], QUESTIONS[2]], [("Why?", "Because " + "very " * 60 + "late.")] * 5):
        batch = tokenizer([QUESTIONS[0][0]] + [q for q, _ in others], [QUESTIONS[0][1]] + [c for _, c in others],
                          padding=True, return_tensors="np")
        outs = session.run(None, {k: v.astype(np.int64) for k, v in batch.items()})
        for b, o in zip(base, outs):
            assert np.array_equal(b[0], o[0, :n]), "static int8 logits changed with the batch"


def test_openvino_reads_the_qdq_file(static_bundle: Path) -> None:
    ov = pytest.importorskip("openvino")
    import onnxruntime as ort
    from transformers import AutoTokenizer

    path = static_bundle / "onnx" / "model_qdq.onnx"
    tokenizer = AutoTokenizer.from_pretrained(str(static_bundle))
    enc = tokenizer([q for q, _ in QUESTIONS], [c for _, c in QUESTIONS], padding=True, return_tensors="np")
    feeds = {k: v.astype(np.int64) for k, v in enc.items()}
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(feeds)
    got = {out.get_any_name(): result[out] for out in compiled.outputs}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    mask = feeds["attention_mask"].astype(bool)
    for name in ("start_logits", "end_logits"):
        assert np.isfinite(got[name]).all()
        # Both engines run the same int8 arithmetic; rounding of a value sitting on a step edge may differ.
        assert np.abs(got[name][mask] - ref[name][mask]).max() < 0.1


def test_nncf_method_writes_standard_qdq(make_checkpoint, tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from transformers import AutoTokenizer

    from distilrt.export.calibration import FeedReader, builtin
    from distilrt.export.convert import export_fp32
    from distilrt.export.load import resolve_checkpoint
    from distilrt.export.quantize_static import describe_graph, quantize_static

    checkpoint = resolve_checkpoint(str(make_checkpoint("distilbert-features-cased")), task="auto")
    plain = export_fp32(checkpoint, tmp_path / "fp32")
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path))
    calibration = builtin(checkpoint.task, size=24)
    reader = FeedReader(calibration.examples, tokenizer, ["input_ids", "attention_mask"], max_length=128)
    quantize_static(plain, tmp_path / "qdq.onnx", reader, method="nncf")
    graph = describe_graph(tmp_path / "qdq.onnx")
    assert graph["domains"] == ["ai.onnx"] and graph["opset"] >= 13
    assert graph["quantize_linear"] > 0 and graph["dequantize_linear"] > graph["quantize_linear"]
    # NNCF would quantise the attention score MatMul too; it stays float (see activation_products).
    model = onnx.load(str(tmp_path / "qdq.onnx"))
    weights = {i.name for i in model.graph.initializer}
    dequantized = {n.output[0]: n.input[0] in weights for n in model.graph.node if n.op_type == "DequantizeLinear"}
    products = [n for n in model.graph.node if n.op_type == "MatMul" and not dequantized.get(n.input[1], False)]
    rounded = [n.name for n in products if any(i in dequantized for i in n.input)]
    assert products and not rounded, rounded


def test_sensitivity_ranks_every_quantised_operator(static_bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from distilrt.export.calibration import FeedReader, builtin
    from distilrt.export.qdq_graph import quantised_operators, restore_operators
    from distilrt.export.static_int8 import rank_sensitivity

    qdq = static_bundle / "onnx" / "model_qdq.onnx"
    plain = static_bundle / "onnx" / "model.onnx"
    tokenizer = AutoTokenizer.from_pretrained(str(static_bundle))
    reader = FeedReader(builtin("question-answering", size=2).examples, tokenizer, ["input_ids", "attention_mask"],
                        max_length=128)
    ranking = rank_sensitivity(qdq, plain, reader.feeds)
    operators = quantised_operators(onnx.load(str(qdq)))
    assert sorted(name for name, _ in ranking) == sorted(operators)
    errors = [error for _, error in ranking]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.0
    # Every operator restored: only the int8 word embeddings are left, far closer to fp32 than the int8 graph.
    model = onnx.load(str(qdq))
    assert restore_operators(model, onnx.load(str(plain)), operators) == operators
    assert not quantised_operators(model)
    restored = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    full = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    feed = reader.feeds[0]
    ref = reference.run(None, feed)[0]
    assert np.abs(restored.run(None, feed)[0] - ref).max() < np.abs(full.run(None, feed)[0] - ref).max()


def test_restored_operator_computes_as_the_plain_graph(static_bundle: Path) -> None:
    """A restored projection reads the unrounded activation and the plain weight (fp16-stored) and bias."""
    import onnxruntime as ort
    from onnx import numpy_helper

    from distilrt.export.qdq_graph import quantised_operators, restore_operators

    plain = onnx.load(str(static_bundle / "onnx" / "model.onnx"))
    model = onnx.load(str(static_bundle / "onnx" / "model_qdq.onnx"))
    operators = quantised_operators(model)
    first = operators[0]
    restore_operators(model, plain, [first])
    assert quantised_operators(model) == operators[1:]
    node = next(n for n in model.graph.node if n.name == first)
    plain_node = next(n for n in plain.graph.node if n.name == first)
    producers = {o: n for n in model.graph.node for o in n.output}
    assert node.input[0] == plain_node.input[0]  # the float activation, not a DequantizeLinear output
    cast = producers[node.input[1]]
    assert cast.op_type == "Cast"
    stored = next(i for i in model.graph.initializer if i.name == cast.input[0])
    weight = next(i for i in plain.graph.initializer if i.name == plain_node.input[1])
    assert stored.data_type == onnx.TensorProto.FLOAT16
    np.testing.assert_allclose(numpy_helper.to_array(stored).astype(np.float32), numpy_helper.to_array(weight),
                               rtol=1e-3, atol=1e-6)
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # still a valid graph


def test_only_projections_read_rounded_activations(static_bundle: Path) -> None:
    """The residual Add after a layer norm must not read the rounded copy the projections read."""
    model = onnx.load(str(static_bundle / "onnx" / "model_qdq.onnx"))
    producers = {o: n for n in model.graph.node for o in n.output}
    readers = {n.op_type for n in model.graph.node for name in n.input
               if producers.get(name) is not None and producers[name].op_type == "DequantizeLinear"
               and producers.get(producers[name].input[0]) is not None
               and producers[producers[name].input[0]].op_type == "QuantizeLinear"}
    assert readers and readers <= {"MatMul", "Gemm"}, readers


def test_fallback_computes_the_fewest_sensitive_operators_in_float(make_checkpoint, static_bundle: Path,
                                                                    tmp_path: Path) -> None:
    from distilrt.export import evaluate
    from distilrt.export.load import resolve_checkpoint
    from distilrt.export.qdq_graph import quantised_operators, restore_operators
    from distilrt.export.static_int8 import Candidate, fallback_counts, fewest_to_restore

    checkpoint = resolve_checkpoint(str(make_checkpoint("distilbert-qa-uncased")), task="auto")
    evalset = evaluate.build(checkpoint, size=24)
    qdq = static_bundle / "onnx" / "model_qdq.onnx"
    plain = static_bundle / "onnx" / "model.onnx"
    full = evaluate.measure(qdq, evalset)
    operators = quantised_operators(onnx.load(str(qdq)))
    # Restoring every operator leaves the int8 embeddings only, which these tiny weights survive: the
    # search always ends on a graph that meets the target.
    chosen = fewest_to_restore(Candidate("ort-minmax", "ort-minmax", qdq, (), full, 0.0), operators, evalset,
                               tmp_path, plain)
    assert chosen is not None and chosen.figures["target_met"]
    assert chosen.in_float == tuple(operators[:len(chosen.in_float)])
    assert set(quantised_operators(onnx.load(str(chosen.path)))) == set(operators) - set(chosen.in_float)
    counts = fallback_counts(len(operators))
    step = counts.index(len(chosen.in_float))
    if full["target_met"]:
        assert step == 0
    if step > 0:  # the binary search only moves up past a count it measured to miss: it is the fewest
        model = onnx.load(str(qdq))
        restore_operators(model, onnx.load(str(plain)), operators[:counts[step - 1]])
        onnx.save(model, str(tmp_path / "fewer.onnx"))
        assert not evaluate.measure(tmp_path / "fewer.onnx", evalset)["target_met"]
    # A size cap the restored file cannot meet stops the search without a result.
    assert fewest_to_restore(Candidate("ort-minmax", "ort-minmax", qdq, (), full, 0.0), operators, evalset,
                             tmp_path, plain, max_bytes=1) is None


def test_fallback_search_measures_the_most_restored_first_then_halves(static_bundle: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a target that needs at least 5 operators in float, the search lands on 6 (the next step) after
    measuring the most restored graph and a binary search's worth of others; out of reach, one measurement."""
    from distilrt.export import static_int8
    from distilrt.export.qdq_graph import quantised_operators

    qdq = static_bundle / "onnx" / "model_qdq.onnx"
    plain = static_bundle / "onnx" / "model.onnx"
    operators = quantised_operators(onnx.load(str(qdq)))
    counts = static_int8.fallback_counts(len(operators))
    assert counts[-1] == len(operators) and 6 in counts
    measured: list[int] = []
    need = 5

    def fake_measure(path: Path, evalset: object) -> dict:
        in_float = len(operators) - len(quantised_operators(onnx.load(str(path))))
        measured.append(in_float)
        return {"target_met": in_float >= need, "target": {}}

    monkeypatch.setattr(static_int8.evaluate, "measure", fake_measure)
    start = static_int8.Candidate("nncf", "nncf", qdq, (), {}, 0.0)
    chosen = static_int8.fewest_to_restore(start, operators, None, tmp_path, plain)  # type: ignore[arg-type]
    assert chosen is not None and len(chosen.in_float) == 6
    assert measured[0] == len(operators) and len(measured) <= 1 + len(counts).bit_length()
    measured.clear()
    need = len(operators) + 1
    assert static_int8.fewest_to_restore(start, operators, None, tmp_path, plain) is None  # type: ignore[arg-type]
    assert measured == [len(operators)]


def test_openvino_breakdown_accounts_for_the_static_graph(static_bundle: Path) -> None:
    """The per-operator breakdown finds the projections running int8 kernels; its total is its rows' sum."""
    pytest.importorskip("openvino")
    from distilrt.benchmarks.breakdown import measure, table

    result = measure(static_bundle, shape=(1, 32), runs=3, threads=1)
    rows = result["rows"]
    assert rows and result["total_ms"] > 0
    assert result["total_ms"] == pytest.approx(sum(row["ms"] for row in rows), abs=0.01 * len(rows))
    projections = [row for row in rows if row["node_type"].startswith("FullyConnected")]
    assert projections and all("i8" in row["kernel"] for row in projections), projections
    assert "| node type | kernel | ms | share |" in table(result)


def test_default_calibration_is_nncf_with_onnxruntime_standing_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from distilrt.export import static_int8
    from distilrt.runtime.errors import UnknownNameError

    monkeypatch.setattr(static_int8, "nncf_available", lambda: True)
    assert static_int8.available_methods() == ["nncf"]
    assert static_int8.available_methods(["ort-minmax", "nncf"]) == ["ort-minmax", "nncf"]
    monkeypatch.setattr(static_int8, "nncf_available", lambda: False)
    assert static_int8.available_methods() == ["ort-minmax"]
    assert static_int8.available_methods(["nncf", "ort-minmax"]) == ["ort-minmax"]
    with pytest.raises(UnknownNameError, match="known: nncf, ort-minmax"):
        static_int8.available_methods(["percentile"])
