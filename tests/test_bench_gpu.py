"""The GPU benchmark rows without a GPU: TensorRT options and profiles, skip decisions, the IO-binding
session (on the CPU device), INT8 calibration, the runner's per-system isolation, and the report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distilrt.benchmarks import gpu, report
from distilrt.benchmarks import tensorrt as trt
from distilrt.benchmarks.runner import Workload
from distilrt.benchmarks.workloads import QAPair

CPU = "CPUExecutionProvider"
NAMES = ("input_ids", "attention_mask")
QA_SHAPES = [(1, 32), (1, 128), (1, 384), (8, 128)]
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


# -- TensorRT options -----------------------------------------------------------------------------

def test_profile_covers_every_workload_shape() -> None:
    assert trt.shape_string(NAMES, 1, 32) == "input_ids:1x32,attention_mask:1x32"
    profile = trt.profile_shapes(NAMES, QA_SHAPES)
    assert profile == {"trt_profile_min_shapes": "input_ids:1x32,attention_mask:1x32",
                       "trt_profile_opt_shapes": "input_ids:1x128,attention_mask:1x128",
                       "trt_profile_max_shapes": "input_ids:8x384,attention_mask:8x384"}
    # A graph with token_type_ids gets a profile entry for it too.
    three = trt.profile_shapes(("input_ids", "attention_mask", "token_type_ids"), [(2, 16)], opt=(2, 16))
    assert three["trt_profile_max_shapes"] == "input_ids:2x16,attention_mask:2x16,token_type_ids:2x16"


@pytest.mark.parametrize("names, shapes, opt, message", [
    ((), [(1, 32)], None, "input names"),
    (NAMES, [], None, "positive sizes"),
    (NAMES, [(0, 32)], None, "positive sizes"),
    (NAMES, QA_SHAPES, (16, 128), "outside the profile"),
])
def test_profile_rejects_what_it_cannot_cover(names: tuple[str, ...], shapes: list[tuple[int, int]],
                                              opt: tuple[int, int] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trt.profile_shapes(names, shapes, opt=opt)


def test_tensorrt_fp16_options_and_provider_order(tmp_path: Path) -> None:
    cache = tmp_path / "trt-cache" / "fp16"
    options = trt.tensorrt_provider_options(precision="fp16", input_names=NAMES, shapes=QA_SHAPES, cache_dir=cache,
                                            timing_cache_dir=tmp_path / "trt-cache", device_id=1)
    assert options["trt_fp16_enable"] is True and options["trt_int8_enable"] is False
    assert options["trt_engine_cache_enable"] is True and options["trt_engine_cache_path"] == str(cache)
    assert options["trt_timing_cache_enable"] is True
    assert options["trt_timing_cache_path"] == str(tmp_path / "trt-cache")
    assert options["trt_profile_max_shapes"] == "input_ids:8x384,attention_mask:8x384"
    assert options["device_id"] == 1
    assert not any("calibration" in key for key in options)
    providers = trt.tensorrt_providers(options, device_id=1)
    assert [name for name, _ in providers] == [gpu.TENSORRT, gpu.CUDA]
    assert providers[0][1] == options and providers[1][1]["device_id"] == 1


def test_tensorrt_int8_needs_a_table_in_the_engine_cache(tmp_path: Path) -> None:
    cache = tmp_path / "int8"
    common: dict[str, Any] = dict(precision="int8", input_names=NAMES, shapes=QA_SHAPES, cache_dir=cache)
    with pytest.raises(ValueError, match="calibration table"):
        trt.tensorrt_provider_options(**common)
    with pytest.raises(ValueError, match="must be in the engine cache"):
        trt.tensorrt_provider_options(**common, calibration_table=tmp_path / "elsewhere" / trt.CALIBRATION_TABLE)
    with pytest.raises(ValueError, match="fp16 or int8"):
        trt.tensorrt_provider_options(**{**common, "precision": "fp32"})
    options = trt.tensorrt_provider_options(**common, calibration_table=cache / trt.CALIBRATION_TABLE)
    assert options["trt_int8_enable"] is True and options["trt_fp16_enable"] is True
    assert options["trt_int8_calibration_table_name"] == trt.CALIBRATION_TABLE
    assert options["trt_int8_use_native_calibration_table"] is False


def test_engine_cache_is_cleared_when_what_it_was_built_for_changes(tmp_path: Path) -> None:
    cache = tmp_path / "trt-cache" / "fp16"
    assert trt.prepare_cache_dir(cache, "model A") is False
    engine = cache / "TensorrtExecutionProvider_TRTKernel_graph_1_sm80.engine"
    engine.write_bytes(b"engine")
    assert trt.engine_files(cache) == [engine]
    assert trt.prepare_cache_dir(cache, "model A") is False and engine.is_file()
    assert trt.prepare_cache_dir(cache, "model B") is True
    assert not engine.exists() and trt.engine_files(cache) == []
    assert (cache / "source.txt").read_text() == "model B"
    # A cache left by an older run without a marker cannot be trusted either.
    (cache / "source.txt").unlink()
    engine.write_bytes(b"engine")
    assert trt.prepare_cache_dir(cache, "model B") is True and not engine.exists()


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


# -- IO binding, end to end, calibration (CPU device, tiny bundle) ------------------------------

@pytest.fixture(scope="module")
def qa_bundle(make_bundle) -> Path:
    return make_bundle("distilbert-qa-uncased")


def _cpu_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=[CPU])


def test_bound_session_matches_a_plain_run(qa_bundle: Path) -> None:
    session = _cpu_session(qa_bundle / "onnx" / "model.onnx")
    bound = gpu.BoundSession(session, device="cpu", device_id=0, precision="fp32")
    assert bound.input_names == ["input_ids", "attention_mask"]
    assert bound.output_names == ["start_logits", "end_logits"] and bound.providers == [CPU]
    feeds = trt.qa_feeds(qa_bundle / "tokenizer.json", PAIRS, bound.input_names)
    got = bound.run(feeds)
    expected = session.run(None, feeds)
    for name, value in zip(bound.output_names, expected):
        assert got[name].dtype == np.float32 and got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)
    # int32 feeds are converted to what the graph declares rather than failing inside ORT.
    as_int32 = {name: value.astype(np.int32) for name, value in feeds.items()}
    np.testing.assert_array_equal(bound.run(as_int32)["start_logits"], expected[0])
    with pytest.raises(ValueError, match=r"takes the inputs \['input_ids', 'attention_mask'\], got feeds for"):
        bound.run({"input_ids": feeds["input_ids"]})


def test_qa_feeds_pad_to_the_longest_pair(qa_bundle: Path) -> None:
    feeds = trt.qa_feeds(qa_bundle / "tokenizer.json", PAIRS, ["input_ids", "attention_mask"])
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2 and ids.dtype == np.int64
    short, long = (0, 1) if mask[0].sum() < mask[1].sum() else (1, 0)
    assert mask[long].all() and not mask[short].all()
    assert (ids[short][mask[short] == 0] == 0).all()  # padding is the pad id
    with pytest.raises(ValueError, match=r"graph inputs \['pixel_values'\]"):
        trt.qa_feeds(qa_bundle / "tokenizer.json", PAIRS, ["input_ids", "pixel_values"])


def test_ort_qa_end_to_end_matches_the_distilrt_pipeline(qa_bundle: Path) -> None:
    from distilrt.runtime import pipeline

    task = gpu.load_ort_qa(qa_bundle, qa_bundle / "onnx" / "model.onnx", providers=[(CPU, {})], device="cpu",
                           precision="fp32", batch_size=2, threads=1)
    assert isinstance(task.session, gpu.BoundSession)
    reference = pipeline("question-answering", model=qa_bundle, precision="fp32", provider="cpu", threads=1)
    questions, contexts = [p.question for p in PAIRS], [p.context for p in PAIRS]
    got, want = task(question=questions, context=contexts), reference(question=questions, context=contexts)
    assert [(a["start"], a["end"], a["answer"]) for a in got] == [(a["start"], a["end"], a["answer"]) for a in want]
    assert [a["score"] for a in got] == pytest.approx([a["score"] for a in want], abs=1e-6)
    run = gpu._task_runner(task).run
    assert run(PAIRS[:1], 1) == [got[0]] and task.batch_size == 1


def _read_trt_table(path: Path) -> dict[str, float]:
    """The table as onnxruntime's TensorRT provider reads it (flatbuffers, tensor name -> bound)."""
    from onnxruntime.quantization.CalTableFlatBuffers.TrtTable import TrtTable

    table = TrtTable.GetRootAsTrtTable(path.read_bytes(), 0)
    return {table.Dict(i).Key().decode(): float(table.Dict(i).Value()) for i in range(table.DictLength())}


def test_int8_calibration_table_from_the_fp32_graph(qa_bundle: Path, tmp_path: Path) -> None:
    model = qa_bundle / "onnx" / "model.onnx"
    feeds = [trt.qa_feeds(qa_bundle / "tokenizer.json", PAIRS[:1], NAMES),
             trt.qa_feeds(qa_bundle / "tokenizer.json", PAIRS, NAMES)]
    table = trt.write_calibration(model, feeds, tmp_path / "int8", providers=[CPU])
    assert table == tmp_path / "int8" / trt.CALIBRATION_TABLE
    bounds = _read_trt_table(table)
    assert {"start_logits", "end_logits"} <= set(bounds)
    # Symmetric ranges: each bound is the largest magnitude the batches produced, so +-bound holds them all.
    session = _cpu_session(model)
    for name in ("start_logits", "end_logits"):
        largest = max(float(np.abs(session.run([name], f)[0]).max()) for f in feeds)
        assert bounds[name] == pytest.approx(largest, rel=1e-5)
    options = trt.tensorrt_provider_options(precision="int8", input_names=NAMES, shapes=QA_SHAPES,
                                            cache_dir=tmp_path / "int8", calibration_table=table)
    assert (Path(options["trt_engine_cache_path"]) / options["trt_int8_calibration_table_name"]) == table
    with pytest.raises(ValueError, match="at least one batch"):
        trt.write_calibration(model, [], tmp_path / "none")


def _graph_file(path: Path, op: str, domain: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    imports = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=imports), str(path))
    return path


def _plain_qa_graph(path: Path) -> Path:
    """A tiny unfused graph with the QA model's inputs and outputs (standard operators only)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["ids", "mask"], ["start_logits"]),
             helper.make_node("Sub", ["ids", "mask"], ["end_logits"])]
    graph = helper.make_graph(nodes, "plain-qa",
                              [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in NAMES],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "seq"])
                               for n in ("start_logits", "end_logits")])
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_tensorrt_gets_an_unfused_graph(tmp_path: Path) -> None:
    plain = _graph_file(tmp_path / "plain.onnx", "Identity", "")
    fused = _graph_file(tmp_path / "fused.onnx", "FastGelu", "com.microsoft")
    assert trt.standard_ops_only(plain) is True and trt.standard_ops_only(fused) is False
    assert trt.tensorrt_graph(plain, None) == (plain, "the bundle's fp32 graph (standard ONNX operators)")
    assert trt.tensorrt_graph(fused, plain) == (plain, f"{plain} (same checkpoint, unfused): the bundle's fp32 "
                                                "graph has ORT fused operators TensorRT cannot parse")
    for missing in (None, tmp_path / "missing.onnx", fused):
        chosen, why = trt.tensorrt_graph(fused, missing)
        assert chosen == fused and why.endswith("no unfused export was found")


def test_ort_loaders_up_to_the_gpu_session(qa_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CUDA / TensorRT loaders, with only the GPU session creation replaced."""
    made: list[dict[str, Any]] = []

    def fake_load(bundle_dir: Path, model_file: Path, **kwargs: Any) -> Any:
        made.append({"model": model_file, **kwargs})
        return object()

    monkeypatch.setattr(gpu, "load_ort_qa", fake_load)
    # A copy of the bundle whose fp32 graph is fused, whatever the exporter chose for the tiny model.
    bundle = tmp_path / "bundle"
    shutil.copytree(qa_bundle, bundle, ignore=shutil.ignore_patterns(".cache"))
    _graph_file(bundle / "onnx" / "model.onnx", "FastGelu", "com.microsoft")
    plain = _plain_qa_graph(tmp_path / "optimum-model.onnx")
    job = gpu.GpuJob(checkpoint=tmp_path, bundle=bundle, work_dir=tmp_path / "work", plain_onnx=plain,
                     shapes=((1, 32), (8, 128)), calibration=((PAIRS[0],), tuple(PAIRS)))

    cuda = gpu._load_ort_cuda(gpu.GPU_SPECS["ort-cuda-fp16-iobinding"], job)
    assert made[0]["model"] == bundle / "onnx" / "model_fp16.onnx" and made[0]["device"] == "cuda"
    assert [name for name, _ in made[0]["providers"]] == [gpu.CUDA] and made[0]["batch_size"] == 8
    assert cuda.build == {"model_file": "model_fp16.onnx"}

    int8 = gpu._load_tensorrt(gpu.GPU_SPECS["tensorrt-int8"], job)
    cache = tmp_path / "work" / "trt-cache" / "int8"
    providers = made[1]["providers"]
    assert [name for name, _ in providers] == [gpu.TENSORRT, gpu.CUDA]
    options = providers[0][1]
    assert options["trt_int8_enable"] is True and options["trt_engine_cache_path"] == str(cache)
    assert options["trt_timing_cache_path"] == str(tmp_path / "work" / "trt-cache")
    assert options["trt_profile_max_shapes"] == "input_ids:8x128,attention_mask:8x128"
    # Calibrated on the graph TensorRT gets: every float tensor of the plain graph has its bound.
    bounds = _read_trt_table(cache / options["trt_int8_calibration_table_name"])
    assert set(bounds) == {"ids", "mask", "start_logits", "end_logits"} and bounds["mask"] == 1.0
    # The bundle's fp32 graph is fused, so TensorRT gets the unfused export instead, and says so.
    assert made[1]["model"] == plain and "unfused" in int8.build["graph"]
    assert int8.build["engine_cache"] == "built"
    assert int8.build["calibration_table"] == str(cache / trt.CALIBRATION_TABLE)

    # A second run finds the engine (and the table) from the first: nothing is rebuilt or recalibrated.
    (cache / "TensorrtExecutionProvider_TRTKernel_graph_0_sm86.engine").write_bytes(b"engine")
    table_written = (cache / trt.CALIBRATION_TABLE).stat().st_mtime_ns
    again = gpu._load_tensorrt(gpu.GPU_SPECS["tensorrt-int8"], job)
    assert again.build["engine_cache"] == "reused" and again.build["cache_cleared"] is False
    assert (cache / trt.CALIBRATION_TABLE).stat().st_mtime_ns == table_written

    fp16 = gpu._load_tensorrt(gpu.GPU_SPECS["tensorrt-fp16"], job)
    assert made[3]["providers"][0][1]["trt_int8_enable"] is False and fp16.build["calibration_table"] is None
    assert made[3]["providers"][0][1]["trt_engine_cache_path"] == str(tmp_path / "work" / "trt-cache" / "fp16")

    # An unfused bundle graph is TensorRT's own choice; a new graph clears the engines built for the old one.
    _plain_qa_graph(bundle / "onnx" / "model.onnx")
    own = gpu._load_tensorrt(gpu.GPU_SPECS["tensorrt-fp16"], job)
    assert made[4]["model"] == bundle / "onnx" / "model.onnx" and own.build["cache_cleared"] is True


def test_int8_without_a_calibration_table_is_skipped_with_the_reason(qa_bundle: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_calibrator(*args: Any, **kwargs: Any) -> Path:
        raise ImportError("No module named 'flatbuffers'")

    monkeypatch.setattr(gpu, "write_calibration", no_calibrator)
    monkeypatch.setattr(gpu, "load_ort_qa", lambda *a, **k: pytest.fail("an uncalibrated engine must not be built"))
    job = gpu.GpuJob(checkpoint=tmp_path, bundle=qa_bundle, work_dir=tmp_path, plain_onnx=None,
                     shapes=((1, 32),), calibration=((PAIRS[0],),))
    with pytest.raises(gpu.GpuSkip, match=r"^no INT8 calibration table could be produced \(ImportError: No module "
                                          r"named 'flatbuffers'\); an uncalibrated int8 engine is not measured$"):
        gpu._load_tensorrt(gpu.GPU_SPECS["tensorrt-int8"], job)


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
        raise gpu.GpuSkip("no INT8 calibration table could be produced (boom)")

    messages: list[str] = []
    probe = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True, "Fake H100"))
    paths = {"checkpoint": tmp_path / "ckpt", "bundle": tmp_path / "bundle"}
    found = gpu.gpu_rows(paths, _workloads(), work_dir=tmp_path, seconds=0.0, min_runs=3, say=messages.append,
                         probe=probe, loaders={"torch-cuda-fp16": working, "ort-cuda-fp16-iobinding": failing_load,
                                               "tensorrt-fp16": failing_run, "tensorrt-int8": no_table})
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
                       "tensorrt-int8": "no INT8 calibration table could be produced (boom)"}
    assert closed == ["torch-cuda-fp16", "tensorrt-fp16"]  # released even when measuring failed
    assert "tensorrt-fp16" not in found["builds"]  # its partial rows are not reported
    assert found["builds"]["torch-cuda-fp16"]["engine_cache"] == "built"
    assert "engine_build_s" not in found["builds"]["torch-cuda-fp16"]
    assert jobs[0].shapes == ((1, 32), (8, 128)) and jobs[0].bundle == tmp_path / "bundle"
    assert jobs[0].plain_onnx is None and jobs[0].calibration == ((PAIRS[0],), tuple(PAIRS * 4))
    assert any(m.startswith("GPU tensorrt-int8 skipped: no INT8 calibration") for m in messages)


def test_tensorrt_rows_report_the_engine_build_apart(tmp_path: Path) -> None:
    def loader(spec: gpu.GpuSystem, job: gpu.GpuJob) -> gpu.Loaded:
        return gpu.Loaded(lambda pairs, size: [], build={"engine_cache": "built", "cache_dir": str(tmp_path)})

    probe = gpu.probe_gpu(providers=[gpu.TENSORRT, gpu.CUDA, CPU], cuda=FakeCuda(True))
    found = gpu.gpu_rows({"checkpoint": tmp_path, "bundle": tmp_path}, _workloads(), work_dir=tmp_path, seconds=0.0,
                         min_runs=1, say=lambda m: None, probe=probe, loaders=dict.fromkeys(gpu.GPU_SYSTEMS, loader))
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
                        {"system": "tensorrt-int8", "reason": "no INT8 calibration table could be produced (x)"}],
            "builds": {"torch-cuda-fp16": {"load_s": 2.25},
                       "tensorrt-fp16": {"load_s": 40.0, "engine_build_s": 95.5, "engine_cache": "built",
                                         "cache_dir": "/w/trt-cache/fp16"}}}


def test_report_renders_measured_gpu_rows_as_a_table_and_skips_as_lines() -> None:
    lines = report.gpu_lines(_gpu_result())
    assert lines[0] == "## GPU — Fake L4"
    assert "| system | qa-b1-32 | qa-b1-128 | load s |" in lines
    torch_line = next(line for line in lines if line.startswith("| transformers pipeline, PyTorch CUDA fp16 |"))
    assert torch_line == "| transformers pipeline, PyTorch CUDA fp16 | 6.0 / 9.0 / 12.0 | 6.5 / 9.8 / 13.0 | 2.2 |"
    trt_line = next(line for line in lines if line.startswith("| ORT TensorRT fp16 engine"))
    assert "| 1.0 / 1.5 / 2.0 | 1.2 / 1.8 / 2.4 | 40.0 |" in trt_line
    assert lines.index(torch_line) < lines.index(trt_line)  # systems in their declared order
    assert ("- tensorrt-fp16: TensorRT engine built in 95.5 s (session creation plus each shape's first call), "
            "cache /w/trt-cache/fp16") in lines
    assert "- ort-cuda-fp16-iobinding skipped: could not be loaded: RuntimeError: oom" in lines
    assert "- tensorrt-int8 skipped: no INT8 calibration table could be produced (x)" in lines
    assert not any(line.startswith("| ORT CUDA") or line.startswith("| ORT TensorRT int8") for line in lines)


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
    assert "## GPU — Fake L4" in text and "- tensorrt-int8 skipped: no INT8 calibration" in text
