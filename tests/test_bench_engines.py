"""distilrt bench's engine rows: the tuned row, the per-engine rows, the int8 GEMM peak through OpenVINO,
cold start per engine, and how the report holds the tuned row against the fastest peer (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distilrt.benchmarks import gemm, report, systems
from distilrt.benchmarks.models import MODELS
from distilrt.benchmarks.runner import Settings, _ensure_tuned
from distilrt.benchmarks.workloads import qa_pair
from distilrt.runtime import load_bundle
from distilrt.runtime import profile as prof
from distilrt.runtime.engines import openvino as ov_engine


def _row(system: str, workload: str, speed: float) -> dict:
    family = "distilrt" if system.startswith("distilrt") else "peer"
    if workload.endswith("mixed"):
        return {"model": "distilbert-qa", "workload": workload, "system": system, "family": family, "kind": "throughput",
                "throughput": speed}
    return {"model": "distilbert-qa", "workload": workload, "system": system, "family": family, "kind": "latency",
            "latency_ms": {"p50": 1000.0 / speed}}


def test_tuned_row_is_held_against_the_fastest_peer() -> None:
    rows = []
    for workload in ("qa-b1-128", "qa-b1-384", "qa-b8-128", "qa-256-mixed"):
        rows += [_row("optimum-int8", workload, 50.0), _row("openvino-int8", workload, 80.0),
                 _row("distilrt-auto", workload, 100.0)]
    rows[-1]["efficiency"] = 0.4
    rows[5]["efficiency"] = 0.55  # distilrt-auto at qa-b1-384
    result = {"rows": rows}
    report.add_ratios(result)
    ours = next(r for r in rows if r["system"] == "distilrt-auto" and r["workload"] == "qa-b1-128")
    assert ours["fastest_peer"] == "openvino-int8" and ours["speedup_vs_fastest"] == 1.25
    assert ours["speedup_vs"] == {"optimum-int8": 2.0, "openvino-int8": 1.25}
    targets = {t["target"]: t for t in report.evaluate_targets(result)}
    for workload in ("qa-b1-128", "qa-b1-384", "qa-b8-128"):
        got = targets[f"tuned (auto) {workload} vs the fastest peer (openvino-int8)"]
        assert (got["measured"], got["goal"], got["met"]) == (1.25, 1.3, False)
    assert targets["tuned (auto) qa-256-mixed vs the fastest peer (openvino-int8)"]["goal"] == 1.5
    assert targets["tuned (auto) int8 efficiency end to end, qa-b1-384"]["met"] is True
    cold = targets["OpenVINO static int8 cold start to first answer / ONNX Runtime int8's (cache warm)"]
    assert cold["measured"] is None and cold["met"] is None  # not measured in this result


def test_distilrt_engine_rows_say_why_they_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"distilrt-auto", "distilrt-ov-int8", "distilrt-ov-bf16"} <= set(systems.SYSTEMS) & set(report.SYSTEM_ORDER)
    monkeypatch.setattr(ov_engine, "available", lambda: False)
    assert "pip install 'distilrt[openvino]'" in systems.unavailable(systems.SYSTEMS["distilrt-ov-int8"])
    assert systems.unavailable(systems.SYSTEMS["distilrt-auto"]) is None  # auto runs whatever is installed
    monkeypatch.setattr(ov_engine, "available", lambda: True)
    monkeypatch.setattr(ov_engine, "cpu_flags", lambda: {"avx2", "fma"})
    assert "AMX-BF16" in systems.unavailable(systems.SYSTEMS["distilrt-ov-bf16"])
    assert systems.unavailable(systems.SYSTEMS["distilrt-ov-int8"]) is None


def test_tuned_row_runs_what_tune_chose(qa_copy: Path, cache: Path) -> None:
    said: list[str] = []
    settings = Settings(tune_budget_s=3.0)
    found = _ensure_tuned(qa_copy, settings, said.append)  # no profile yet: tune runs first
    assert found["tuned_now"] and found["latency"] and "tuned on this host" in found["why"]
    entry, _ = prof.lookup(load_bundle(qa_copy).manifest)
    assert entry is not None and found["latency"] == entry.latency.label
    # a profile entry that says ONNX Runtime fp32 on one thread: the row runs exactly that, not its own choice
    prof.write_entry(load_bundle(qa_copy).manifest, latency=prof.Setting("onnxruntime", "fp32", 1, 1), bulk=None,
                     workloads={})
    assert _ensure_tuned(qa_copy, settings, said.append)["tuned_now"] is None
    runner = systems.load(systems.SYSTEMS["distilrt-auto"], MODELS["distilbert-qa"], {"bundle": qa_copy}, threads=2)
    try:
        assert (runner.engine["engine"], runner.engine["precision"], runner.engine["threads"]) == ("onnxruntime",
                                                                                                   "fp32", 1)
        assert runner.streams == (1,)  # the profile's streams, not the bench's
        answers = runner.run([qa_pair(48), qa_pair(64, seed=2)], 2)
        assert [set(a) for a in answers] == [{"score", "start", "end", "answer"}] * 2
    finally:
        runner.close()


@pytest.mark.skipif(not ov_engine.available(), reason="openvino is not installed")
def test_openvino_gemm_peak_runs_the_matmul_in_int8() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qdq.onnx"
        path.write_bytes(gemm.qdq_matmul_graph(64, 32).SerializeToString())
        config = ov_engine.compile_config(precision=ov_engine.STATIC_INT8, threads=1, streams=1, hint="latency",
                                          cache_dir=None)
        compiled = ov_engine.core().compile_model(str(path), "CPU", config)
    layers = {op.get_rt_info()["layerType"].astype(str): op.get_rt_info()["runtimePrecision"].astype(str)
              for op in compiled.get_runtime_model().get_ordered_ops()}
    matmul = layers.get("FullyConnected", layers.get("MatMul"))
    assert matmul in ("u8", "i8"), layers  # the peak is an integer GEMM, not a float one
    a = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    got = compiled.create_infer_request().infer({"A": a})[compiled.outputs[0]]
    assert got.shape == (16, 32) and np.isfinite(got).all()
    peak = gemm.measure_openvino_int8_peak(threads=1, seconds=0.01, shapes=((16, 64, 32),))
    assert peak.engine == "openvino" and peak.gops > 0 and set(peak.per_shape) == {"16x64x32"}


def test_cold_start_child_reports_time_to_answer_and_its_own_peak_rss(qa_copy: Path) -> None:
    from distilrt.benchmarks import coldstart_engines

    configs = coldstart_engines.configs_for(qa_copy)
    assert "onnxruntime int8" in configs and "openvino int8-static (cache warm)" not in configs  # no static file
    found = coldstart_engines.run_child(qa_copy, "int8", "cpu")
    assert found["engine"] == "onnxruntime int8" and isinstance(found["answer"], str)
    assert 0 < found["import_s"] + found["load_s"] + found["first_call_s"] < found["to_first_answer_s"]
    assert found["to_first_answer_s"] <= found["process_s"] and found["peak_rss_mb"] > 10
    text = coldstart_engines.table({"onnxruntime int8": coldstart_engines._summary([found])})
    assert "| onnxruntime int8 | onnxruntime int8 |" in text


def test_report_lists_the_per_engine_peaks_and_the_tuned_choice() -> None:
    lines = report._peak_lines({"fp32-onnxruntime": {"gops": 300.0}, "int8-onnxruntime": {"gops": 2000.0},
                                "int8-openvino": {"gops": 2500.0}, "fp32": {"gops": 300.0},
                                "int8": {"gops": 2500.0, "engine": "openvino"}}, 2)
    assert "int8-openvino 2500.0 GOP/s" in lines[0] and "best of them (openvino)" in lines[0]
    assert "fp32 300.0" not in lines[0].replace("fp32-onnxruntime 300.0", "")
    tuned = report._tuned_lines({"distilbert-qa": {"latency": "openvino/int8-static/t2/s1", "bulk": None,
                                                   "tuned_now": {"seconds": 100.0}}})
    assert "single calls openvino/int8-static/t2/s1" in tuned[0] and "tuned in this run" in tuned[0]
    json.dumps(Settings().to_dict())  # the settings stay writable to results.json


def test_peaks_measured_twice_keep_the_higher() -> None:
    from distilrt.benchmarks.runner import best_peaks

    def peaks(fp32: float, ort: float, ov: float) -> dict[str, gemm.Peak]:
        found = {"fp32-onnxruntime": gemm.Peak(fp32, (1, 1, 1), {}), "int8-onnxruntime": gemm.Peak(ort, (1, 1, 1), {}),
                 "int8-openvino": gemm.Peak(ov, (1, 1, 1), {}, engine="openvino")}
        return {**found, "fp32": found["fp32-onnxruntime"], "int8": max(found.values(), key=lambda p: p.gops)}

    best = best_peaks(peaks(150.0, 1900.0, 2000.0), peaks(370.0, 4100.0, 3000.0))  # loaded start, quiet end
    assert (best["fp32"].gops, best["int8-onnxruntime"].gops, best["int8-openvino"].gops) == (370.0, 4100.0, 3000.0)
    assert best["int8"].gops == 4100.0 and best["int8"].engine == "onnxruntime"
