"""The GPU check without a GPU: every row skipped with its reason in seconds, exit 0 and JSON; its
measurements (node placement, parity, latency, the engine-cache logic) exercised on the CPU provider."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distilrt.benchmarks import gpucheck, gpuenv

CPU = "CPUExecutionProvider"
ROOT = Path(__file__).resolve().parents[1]


def _args(tmp_path: Path, **extra) -> argparse.Namespace:
    values = {"work": str(tmp_path / "work"), "qa_bundle": None, "minilm_bundle": None, "seconds": 0.01,
              "budget": 300.0, "output": str(tmp_path / "out.json")}
    return argparse.Namespace(**{**values, **extra})


def test_cpu_host_skips_every_row_with_its_reason(tmp_path: Path) -> None:
    env = gpucheck.environment(providers=["AzureExecutionProvider", CPU], nvidia_smi=None)
    result = gpucheck.run_checks(_args(tmp_path), env=env, say=lambda m: pytest.fail(f"nothing to do here: {m}"))
    rows = result["rows"]
    assert {(r["model"], r["system"]) for r in rows} == {(m, f"{p} {q}") for m in gpucheck.MODELS
                                                         for p, q in gpucheck.SYSTEMS}
    assert len(rows) == 2 * (3 + 3 + 4 + 4) and all(r["status"] == "skipped" for r in rows)
    cuda = next(r for r in rows if r["system"] == "cuda fp16")["reason"]
    assert "has no CUDAExecutionProvider" in cuda and "onnxruntime-gpu" in cuda and "nvidia-smi not found" in cuda
    trt = next(r for r in rows if r["system"] == "tensorrt int8")["reason"]
    assert "no TensorrtExecutionProvider" in trt and "libnvinfer" in trt
    assert not (tmp_path / "work").exists()  # nothing exported when nothing can run
    text = gpucheck.table(result)
    assert "distilbert-qa | cuda fp32" in text and "Skipped because:" in text and "[2] " in text


def test_reasons_follow_what_the_host_has() -> None:
    ready = {"onnxruntime": "1.22.0", "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU],
             "gpus": ["NVIDIA H100, 550.54, 81559 MiB"], "libraries": {"tensorrt": "libnvinfer.so.10"}}
    assert set(gpucheck.system_reasons(ready).values()) == {None}
    no_trt_lib = {**ready, "libraries": {"tensorrt": None}}
    reasons = gpucheck.system_reasons(no_trt_lib)
    assert reasons[("cuda", "fp16")] is None and "libnvinfer" in reasons[("tensorrt", "fp16")]


def test_both_onnxruntime_builds_installed_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpuenv, "_version", lambda name: "1.22.0" if name.startswith("onnxruntime") else None)
    env = gpucheck.environment(providers=[CPU], nvidia_smi=None)
    assert "both installed" in env["conflict"] and "pip uninstall -y onnxruntime onnxruntime-gpu" in env["conflict"]


@pytest.mark.skipif(gpucheck.CUDA in __import__("onnxruntime").get_available_providers(),
                    reason="on a GPU host the script does real GPU work")
def test_script_exits_0_fast_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--output", str(out),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - start < 30
    data = json.loads(out.read_text())
    assert data["environment"]["onnxruntime"] and data["rows"]
    assert all(r["status"] == "skipped" and r["reason"] for r in data["rows"])
    assert "Skipped because:" in done.stdout


def test_measurements_run_on_the_cpu_provider(make_bundle, tmp_path: Path) -> None:
    """Placement, parity and latency code paths, with the CPU provider standing in for the GPU."""
    rows: list[dict] = []
    bundle = make_bundle("distilbert-qa-uncased")
    gpucheck._check_system(rows, "distilbert-qa", "cpu", "fp16", bundle, _args(tmp_path),
                           gpucheck.Budget(300.0), say=lambda m: None)
    by_check = {r["check"]: r for r in rows}
    assert set(by_check) == {"placement", "parity", "latency"}, rows
    assert all(r["status"] == "ok" for r in rows), rows
    placement = by_check["placement"]["figures"]
    assert set(placement) == {CPU} and placement[CPU] > 10
    parity = by_check["parity"]["figures"]
    assert set(parity["max_abs_diff"]) == {"start_logits", "end_logits"}
    assert 0 < max(parity["max_abs_diff"].values()) < 1e-2  # fp16 against fp32, on the fixed text set
    assert set(parity["top1_agreement"]) == {"start_logits", "end_logits"}
    cells = by_check["latency"]["figures"]
    assert len(cells) == 2 * len(gpucheck.SHAPES) and all(c["p50"] > 0 for c in cells.values())
    assert {"1x128 io_binding=on", "1x128 io_binding=off"} <= set(cells)


def test_budget_spent_skips_the_remaining_checks(make_bundle, tmp_path: Path) -> None:
    rows: list[dict] = []
    budget = gpucheck.Budget(1.0)
    budget.start -= 5
    gpucheck._check_system(rows, "distilbert-qa", "cpu", "fp32", make_bundle("distilbert-qa-uncased"),
                           _args(tmp_path), budget, say=lambda m: None)
    assert [r["status"] for r in rows] == ["skipped"] * 3 and "time budget of 1 s is spent" in rows[0]["reason"]


class _Session:
    def __init__(self, root: Path, log: list[tuple[int, ...]]) -> None:
        self.root, self.log = root, log

    def run(self, feeds):
        shape = next(iter(feeds.values())).shape
        self.log.append(shape)
        # The first length builds the engine; longer ones build another only where the profile does not hold them.
        if shape[1] <= 64 or self.root.name == "rebuilds":
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / f"engine_{shape[1]}.engine").write_bytes(b"e")
        return {}


def test_tensorrt_cache_figures(tmp_path: Path) -> None:
    import numpy as np

    log: list[tuple[int, ...]] = []
    feeds = {"input_ids": np.ones((1, 16), dtype=np.int64), "attention_mask": np.ones((1, 16), dtype=np.int64)}
    for name, rebuilt in (("holds", False), ("rebuilds", True)):
        root = tmp_path / name
        task = type("Task", (), {"session": _Session(root, log)})()
        figures = gpucheck.tensorrt_cache(lambda: task, root, feeds)
        assert figures["engines"] == 1 and figures["reloaded_from_cache"] is True
        assert figures["new_engine_for_new_lengths"] is rebuilt
        assert figures["engine_build_s"] >= 0 and figures["second_load_s"] >= 0
    assert (1, 100) in log and (1, 200) in log
