"""The GPU benchmark rows without a GPU: skip decisions, the loaders up to the GPU session (they run the
runtime's own pipeline), answer agreement with CPU fp32, the runner's per-system isolation, the report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from distilrt.benchmarks import gpu, report
from distilrt.benchmarks.runner import Workload
from distilrt.benchmarks.workloads import QAPair

CPU = "CPUExecutionProvider"
PAIRS = [QAPair("Who was Jim Henson?", "Jim Henson was a nice puppet maker from the United States."),
         QAPair("Where is the museum?", "The museum of modern art is in the city, near the old river bridge.")]


class FakeCuda:
    """Stands in for ``torch.cuda``."""

    def __init__(self, available: bool, name: str = "Fake GPU 80GB") -> None:
        self.available = available
        self.name = name

    def is_available(self) -> bool:
        return self.available

    def get_device_name(self, index: int = 0) -> str:
        return self.name


# -- skip decisions -------------------------------------------------------------------------------

def test_no_gpu_and_a_cpu_onnxruntime_skip_everything_with_each_reason() -> None:
    probe = gpu.probe_gpu(providers=["AzureExecutionProvider", CPU], cuda=FakeCuda(False))
    assert probe.device is None and probe.torch_installed
    reasons = gpu.skip_reasons(probe)
    assert set(reasons) == set(gpu.GPU_SYSTEMS) and all(reasons.values())
    assert reasons["torch-cuda-fp16"].startswith("no CUDA device: torch.cuda.is_available() is False")
    assert "CUDAExecutionProvider" not in reasons["torch-cuda-fp16"]
    assert "onnxruntime-gpu" in reasons["ort-cuda-fp16-iobinding"]
    assert "AzureExecutionProvider, CPUExecutionProvider" in reasons["ort-cuda-fp16-iobinding"]
    assert "TensorrtExecutionProvider" not in reasons["ort-cuda-fp16-iobinding"]
    for key in ("tensorrt-fp16", "tensorrt-int8"):
        assert "no TensorrtExecutionProvider" in reasons[key] and "no CUDA device" in reasons[key]


def test_gpu_with_cuda_but_no_tensorrt() -> None:
    probe = gpu.probe_gpu(providers=[gpu.CUDA, CPU], cuda=FakeCuda(True, "Fake A10"))
    assert probe.device == "Fake A10"
    reasons = gpu.skip_reasons(probe)
    assert reasons["torch-cuda-fp16"] is None and reasons["ort-cuda-fp16-iobinding"] is None
    for key in ("tensorrt-fp16", "tensorrt-int8"):
        assert reasons[key].startswith("onnxruntime has no TensorrtExecutionProvider (available: "
                                       "CUDAExecutionProvider, CPUExecutionProvider)")


def test_everything_available_and_torch_missing() -> None:
    full = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True))
    assert gpu.skip_reasons(full) == {key: None for key in gpu.GPU_SYSTEMS}
    # Without torch nothing says whether a device exists: the ORT rows are tried, the torch row is not.
    no_torch = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=None)
    reasons = gpu.skip_reasons(no_torch)
    assert reasons["torch-cuda-fp16"] == "torch is not installed (the transformers pipeline runs on it)"
    assert [reasons[k] for k in gpu.GPU_SYSTEMS[1:]] == [None, None, None]
    # Without the QA model nothing runs, and each reason says how to add it.
    for reason in gpu.skip_reasons(full, have_model=False).values():
        assert reason == "the distilbert-qa model is not part of this run (add it with --models distilbert-qa)"


def test_a_broken_torch_cuda_is_a_reason_not_a_crash() -> None:
    class Broken(FakeCuda):
        def is_available(self) -> bool:
            raise RuntimeError("CUDA driver version is insufficient\nmore lines")

    probe = gpu.probe_gpu(providers=[gpu.CUDA, CPU], cuda=Broken(True))
    assert probe.device is None
    assert probe.cuda_reason == "torch.cuda failed: RuntimeError: CUDA driver version is insufficient"


def test_provider_fallback_is_refused() -> None:
    gpu.check_primary(gpu.TENSORRT, [gpu.TENSORRT, gpu.CUDA, CPU])
    with pytest.raises(RuntimeError, match="runs on CUDAExecutionProvider, CPUExecutionProvider, not Tensorrt"):
        gpu.check_primary(gpu.TENSORRT, [gpu.CUDA, CPU])
    with pytest.raises(RuntimeError, match="runs on nothing"):
        gpu.check_primary(gpu.CUDA, [])


# -- the loaders, up to the GPU session (tiny bundle) --------------------------------------------

@pytest.fixture(scope="module")
def qa_bundle(make_bundle) -> Path:
    return make_bundle("distilbert-qa-uncased")


class _FakeTask:
    def __init__(self, providers: list[str], options: dict[str, Any]) -> None:
        plan = type("Plan", (), {"options": [options]})()
        self.session = type("S", (), {"providers": providers, "path": Path("onnx/model_fp16.onnx"), "plan": plan})()
        self.batch_size = 0

    def __call__(self, *, question: list[str], context: list[str]) -> list[dict[str, Any]]:
        return [{"start": 0, "end": 1, "answer": "x"} for _ in question]


def test_loaders_run_the_runtime_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import distilrt.runtime as runtime

    calls: list[dict[str, Any]] = []

    def fake_pipeline(task: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        primary = gpu.TENSORRT if kwargs["provider"] == "tensorrt" else gpu.CUDA
        engine_dir = tmp_path / "work" / "trt-cache" / "abc-fp16-1x1-1x128-32x384"
        return _FakeTask([primary, CPU], {"trt_engine_cache_path": str(engine_dir),
                                          "trt_profile_max_shapes": "input_ids:32x384"})

    monkeypatch.setattr(runtime, "pipeline", fake_pipeline)
    job = gpu.GpuJob(checkpoint=tmp_path, bundle=tmp_path / "bundle", work_dir=tmp_path / "work",
                     shapes=((1, 32), (8, 128)), pairs=tuple(PAIRS))
    cuda = gpu._load_runtime(gpu.GPU_SPECS["ort-cuda-fp16-iobinding"], job)
    assert calls[0]["provider"] == "cuda" and calls[0]["precision"] == "fp16" and calls[0]["io_binding"] is True
    assert calls[0]["batch_size"] == 8 and cuda.build["model_file"] == "model_fp16.onnx"
    int8 = gpu._load_runtime(gpu.GPU_SPECS["tensorrt-int8"], job)
    assert calls[1]["provider"] == "tensorrt" and calls[1]["precision"] == "int8"
    assert calls[1]["tensorrt_cache_dir"] == tmp_path / "work" / "trt-cache"
    assert int8.build["engines_before"] == 0 and int8.build["trt_profile_max_shapes"] == "input_ids:32x384"
    assert int8.run(PAIRS, 2) == [{"start": 0, "end": 1, "answer": "x"}] * 2


def test_tensorrt_int8_without_a_qdq_graph_is_skipped_with_the_real_cause(qa_bundle: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from distilrt.runtime import providers

    bundle = tmp_path / "bundle"
    shutil.copytree(qa_bundle, bundle, ignore=shutil.ignore_patterns(".cache"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["variants"] = {k: v for k, v in manifest["variants"].items() if k in ("fp32", "fp16", "int8")}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(providers, "available_providers", lambda: [gpu.TENSORRT, gpu.CUDA, CPU])
    job = gpu.GpuJob(checkpoint=tmp_path, bundle=bundle, work_dir=tmp_path / "work", shapes=((1, 32),),
                     pairs=(PAIRS[0],))
    with pytest.raises(gpu.GpuSkip, match=r"TensorRT cannot run bundle .* at int8: int8 \(onnx/model_quantized.onnx\): it "):
        gpu._load_runtime(gpu.GPU_SPECS["tensorrt-int8"], job)


def test_agreement_with_the_cpu_fp32_answers(qa_bundle: Path) -> None:
    want = gpu.reference_answers(qa_bundle, PAIRS)
    assert len(want) == 2 and all({"start", "end", "answer", "score"} <= set(a) for a in want)
    assert gpu.agreement(want, want) == {"top1_agreement": 1.0, "compared": 2}
    moved = [dict(want[0], start=want[0]["start"] + 1), want[1]]
    assert gpu.agreement(moved, want) == {"top1_agreement": 0.5, "compared": 2}
    with pytest.raises(ValueError, match="1 answers to compare with 2"):
        gpu.agreement(want[:1], want)


# -- the runner: one system failing never stops the others ---------------------------------------

def _workloads() -> list[Workload]:
    return [Workload("qa-b1-32", "latency", [PAIRS[0]], (1,), (1, 32)),
            Workload("qa-b8-128", "latency", PAIRS * 4, (8,), (8, 128)),
            Workload("qa-256-mixed", "throughput", PAIRS, (1, 8))]


def test_each_gpu_system_is_measured_or_skipped_on_its_own(tmp_path: Path) -> None:
    calls: list[tuple[str, str, int]] = []
    closed: list[str] = []
    jobs: list[gpu.GpuJob] = []

    def working(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        jobs.append(job)

        def run(pairs: list[QAPair], batch_size: int) -> list[Any]:
            calls.append((spec.key, pairs[0].question, batch_size))
            return [{"answer": "x"}] * len(pairs)
        return gpu.Loaded(run, lambda: closed.append(spec.key), {"engine_cache": "built", "cache_dir": "/c"})

    def failing_load(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        raise RuntimeError("CUDA out of memory\n(long trace)")

    def failing_run(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        def run(pairs: list[QAPair], batch_size: int) -> list[Any]:
            if batch_size == 8:
                raise RuntimeError("engine build failed")
            return []
        return gpu.Loaded(run, lambda: closed.append(spec.key))

    def no_table(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        raise gpu.GpuSkip("TensorRT cannot run bundle 'qa' at int8 (boom)")

    messages: list[str] = []
    probe = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True, "Fake H100"))
    paths = {"checkpoint": tmp_path / "ckpt", "bundle": tmp_path / "bundle"}
    found = gpu.gpu_rows(paths, _workloads(), work_dir=tmp_path, seconds=0.0, min_runs=3, say=messages.append,
                         probe=probe, loaders={"torch-cuda-fp16": working, "ort-cuda-fp16-iobinding": failing_load,
                                               "tensorrt-fp16": failing_run, "tensorrt-int8": no_table},
                         reference=lambda bundle, pairs: [{"start": 0, "end": 1}] * len(pairs))
    assert found["measured"] is True and found["reason"] is None and found["device"] == "Fake H100"
    assert [(r["system"], r["workload"]) for r in found["rows"]] == [("torch-cuda-fp16", "qa-b1-32"),
                                                                      ("torch-cuda-fp16", "qa-b8-128")]
    row = found["rows"][1]
    assert row["kind"] == "latency" and row["batch_size"] == 8 and row["items"] == 8 and row["precision"] == "fp16"
    assert set(row["latency_ms"]) == {"p50", "p95", "p99", "mean", "runs"} and row["latency_ms"]["runs"] >= 3
    assert row["first_call_ms"] >= 0
    # First call + time_calls' 2 warm-up calls + at least 3 timed calls, for each latency workload only.
    assert sum(1 for c in calls if c[2] == 1) >= 6 and sum(1 for c in calls if c[2] == 8) >= 6
    skipped = {s["system"]: s["reason"] for s in found["skipped"]}
    assert skipped == {"ort-cuda-fp16-iobinding": "could not be loaded: RuntimeError: CUDA out of memory",
                       "tensorrt-fp16": "failed while measuring qa-b8-128: RuntimeError: engine build failed",
                       "tensorrt-int8": "TensorRT cannot run bundle 'qa' at int8 (boom)"}
    assert closed == ["torch-cuda-fp16", "tensorrt-fp16"]  # released even when measuring failed
    assert "tensorrt-fp16" not in found["builds"]  # its partial rows are not reported
    assert found["builds"]["torch-cuda-fp16"]["engine_cache"] == "built"
    # Its answers ("x" spans without offsets) do not match the reference's: agreement says so.
    assert found["builds"]["torch-cuda-fp16"]["agreement_vs_cpu_fp32"] == {"top1_agreement": 0.0, "compared": 2}
    assert "engine_build_s" not in found["builds"]["torch-cuda-fp16"]
    assert jobs[0].shapes == ((1, 32), (8, 128)) and jobs[0].bundle == tmp_path / "bundle"
    assert jobs[0].pairs == tuple(PAIRS) and jobs[0].reference == ({"start": 0, "end": 1},) * 2
    assert any(m.startswith("GPU tensorrt-int8 skipped: TensorRT cannot run") for m in messages)


def test_tensorrt_rows_report_the_engine_build_apart(tmp_path: Path) -> None:
    def loader(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        return gpu.Loaded(lambda pairs, size: [], build={"engine_cache": "built", "cache_dir": str(tmp_path)})

    probe = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True))
    found = gpu.gpu_rows({"checkpoint": tmp_path, "bundle": tmp_path}, _workloads(), work_dir=tmp_path, seconds=0.0,
                         min_runs=1, say=lambda m: None, probe=probe, loaders=dict.fromkeys(gpu.GPU_SYSTEMS, loader),
                         reference=lambda bundle, pairs: [])
    builds = found["builds"]
    assert set(builds) == set(gpu.GPU_SYSTEMS) and found["skipped"] == []
    for key in ("tensorrt-fp16", "tensorrt-int8"):
        build = builds[key]
        assert build["engine_build_s"] == pytest.approx(build["load_s"] + sum(build["first_call_s"].values()), abs=2e-3)
        assert set(build["first_call_s"]) == {"qa-b1-32", "qa-b8-128"}
    assert "engine_build_s" not in builds["ort-cuda-fp16-iobinding"]


def test_no_gpu_here_means_no_loader_is_called(tmp_path: Path) -> None:
    def never(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        raise AssertionError(f"{spec.key} must not be loaded without a GPU")

    printed: list[str] = []
    found = gpu.gpu_rows({"checkpoint": tmp_path, "bundle": tmp_path}, _workloads(), work_dir=tmp_path, seconds=0.0,
                         min_runs=1, say=printed.append, probe=gpu.probe_gpu(providers=[CPU], cuda=FakeCuda(False)),
                         loaders=dict.fromkeys(gpu.GPU_SYSTEMS, never))
    assert found["measured"] is False and found["rows"] == [] and len(found["skipped"]) == 4
    assert found["reason"] == "no GPU system could run; each one's reason is listed"
    assert len(printed) == 4 and all(m.startswith("GPU ") and " skipped: no CUDA device" in m for m in printed)
    same = gpu.gpu_rows(None, _workloads(), work_dir=tmp_path, seconds=0.0, min_runs=1, say=printed.append,
                        probe=gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True)),
                        loaders=dict.fromkeys(gpu.GPU_SYSTEMS, never))
    assert same["reason"].startswith("the distilbert-qa model is not part of this run")


def test_runner_gpu_rows_keep_the_result_shape_on_this_machine(tmp_path: Path) -> None:
    import onnxruntime as ort

    from distilrt.benchmarks.runner import Settings, _gpu_rows

    printed: list[str] = []
    found = _gpu_rows(Settings.quick_mode(work_dir=tmp_path), {}, printed.append)
    assert set(found) >= {"measured", "systems", "reason", "rows", "skipped"}
    assert found["systems"] == list(gpu.GPU_SYSTEMS) and found["measured"] is False
    assert [s["system"] for s in found["skipped"]] == list(gpu.GPU_SYSTEMS)
    assert all("distilbert-qa model is not part of this run" in s["reason"] for s in found["skipped"])
    if gpu.CUDA not in ort.get_available_providers():
        assert all("onnxruntime-gpu" in s["reason"] for s in found["skipped"][1:])


def test_runner_keeps_the_cpu_run_when_the_gpu_runner_itself_fails(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from distilrt.benchmarks.runner import Settings, _gpu_rows

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise OSError("disk full")

    monkeypatch.setattr(gpu, "gpu_rows", broken)
    printed: list[str] = []
    found = _gpu_rows(Settings.quick_mode(work_dir=tmp_path), {}, printed.append)
    assert found["measured"] is False and found["reason"] == "the GPU runner failed: OSError: disk full"
    assert [s["system"] for s in found["skipped"]] == list(gpu.GPU_SYSTEMS)
    assert printed == ["GPU rows skipped: the GPU runner failed: OSError: disk full"]
    assert report.gpu_lines(found)[-2] == "- tensorrt-int8 skipped: the GPU runner failed: OSError: disk full"


# -- report ---------------------------------------------------------------------------------------

def _gpu_result() -> dict[str, Any]:
    def row(system: str, workload: str, p50: float) -> dict[str, Any]:
        return {"model": "distilbert-qa", "workload": workload, "system": system, "label": gpu.GPU_SPECS[system].label,
                "kind": "latency", "batch_size": 1, "items": 1,
                "latency_ms": {"p50": p50, "p95": p50 * 1.5, "p99": p50 * 2, "mean": p50, "runs": 50}}

    return {"measured": True, "systems": list(gpu.GPU_SYSTEMS), "reason": None, "device": "Fake L4",
            "rows": [row("torch-cuda-fp16", "qa-b1-32", 6.0), row("torch-cuda-fp16", "qa-b1-128", 6.5),
                     row("tensorrt-fp16", "qa-b1-32", 1.0), row("tensorrt-fp16", "qa-b1-128", 1.2)],
            "skipped": [{"system": "ort-cuda-fp16-iobinding", "reason": "could not be loaded: RuntimeError: oom"},
                        {"system": "tensorrt-int8", "reason": "TensorRT cannot run bundle 'qa' at int8 (x)"}],
            "builds": {"torch-cuda-fp16": {"load_s": 2.25},
                       "tensorrt-fp16": {"load_s": 40.0, "engine_build_s": 95.5, "engine_cache": "built",
                                         "cache_dir": "/w/trt-cache/fp16",
                                         "agreement_vs_cpu_fp32": {"top1_agreement": 1.0, "compared": 11}}}}


def test_report_renders_measured_gpu_rows_as_a_table_and_skips_as_lines() -> None:
    lines = report.gpu_lines(_gpu_result())
    assert lines[0] == "## GPU — Fake L4"
    assert "| system | qa-b1-32 | qa-b1-128 | load s |" in lines
    torch_line = next(line for line in lines if line.startswith("| transformers pipeline, PyTorch CUDA fp16 |"))
    assert torch_line == "| transformers pipeline, PyTorch CUDA fp16 | 6.0 / 9.0 / 12.0 | 6.5 / 9.8 / 13.0 | 2.2 |"
    trt_line = next(line for line in lines if line.startswith("| distilrt ORT TensorRT fp16 engine"))
    assert "| 1.0 / 1.5 / 2.0 | 1.2 / 1.8 / 2.4 | 40.0 |" in trt_line
    assert lines.index(torch_line) < lines.index(trt_line)  # systems in their declared order
    assert ("- tensorrt-fp16: TensorRT engine built in 95.5 s (session creation plus each shape's first call), "
            "cache /w/trt-cache/fp16") in lines
    assert "- ort-cuda-fp16-iobinding skipped: could not be loaded: RuntimeError: oom" in lines
    assert "- tensorrt-fp16: top-1 answer agreement with distilrt CPU fp32 100.0% of 11 questions" in lines
    assert "- tensorrt-int8 skipped: TensorRT cannot run bundle 'qa' at int8 (x)" in lines
    assert not any(line.startswith("| distilrt ORT CUDA") or "TensorRT int8" in line for line in lines)


def test_report_gpu_section_when_nothing_ran_and_for_old_results() -> None:
    none_ran = {"measured": False, "systems": list(gpu.GPU_SYSTEMS), "reason": "r", "device": None, "rows": [],
                "skipped": [{"system": s, "reason": f"why {s}"} for s in gpu.GPU_SYSTEMS], "builds": {}}
    lines = report.gpu_lines(none_ran)
    assert lines[0] == "## GPU" and not any(line.startswith("|") for line in lines)
    assert [line for line in lines if line.startswith("- ")] == [f"- {s} skipped: why {s}" for s in gpu.GPU_SYSTEMS]
    old = {"measured": False, "systems": ["tensorrt-fp16"], "reason": "no GPU here"}
    assert report.gpu_lines(old) == ["GPU rows (tensorrt-fp16) skipped: no GPU here.", ""]
    assert report.gpu_lines({}) == []


def test_markdown_carries_the_gpu_section() -> None:
    result = {"machine": {"cpu": "Test CPU", "logical_cores": 2, "isa": ["avx2"], "versions": {"onnxruntime": "x"}},
              "settings": {"threads": 2, "quick": True}, "models": {}, "rows": [], "skipped": [], "kernel": [],
              "gpu": _gpu_result()}
    text = report.markdown(result)
    assert "## GPU — Fake L4" in text and "- tensorrt-int8 skipped: TensorRT cannot run" in text
