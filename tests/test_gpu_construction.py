"""GPU paths built without a GPU: provider lists and options, TensorRT graphs, profiles and engine cache,
ONNX Runtime's silent fallback, and ``provider="auto"`` re-planning for the CPU when CUDA does not load."""

from __future__ import annotations

import importlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from distilrt.runtime import ProviderUnavailableError, load_bundle, pipeline
from distilrt.runtime import providers as prov
from distilrt.runtime.userdirs import cache_root
from distilrt.runtime import tensorrt as trt
from distilrt.runtime.errors import CacheDirError, GraphUnsupportedError, MissingDependencyError
from distilrt.runtime.graphinfo import graph_ops, nonstandard_ops
from distilrt.runtime.manifest import Manifest, Variant

CPU, CUDA, TRT = prov.PROVIDERS["cpu"], prov.PROVIDERS["cuda"], prov.PROVIDERS["tensorrt"]
NAMES = ("input_ids", "attention_mask")
PLAIN = frozenset({("", "MatMul"), ("", "Softmax"), ("", "LayerNormalization"), ("", "Gather")})
FUSED = PLAIN | {("com.microsoft", "Attention"), ("com.microsoft", "SkipLayerNormalization")}
DYNAMIC_INT8 = PLAIN | {("", "DynamicQuantizeLinear"), ("", "MatMulInteger")}
QDQ = PLAIN | {("", "QuantizeLinear"), ("", "DequantizeLinear")}


def _manifest(files: dict[str, str]) -> Manifest:
    variants = {key: Variant(key, file, 1, f"{index:064x}") for index, (key, file) in enumerate(files.items())}
    return Manifest(name="m", task="question-answering", architecture="DistilBertForQuestionAnswering",
                    model_type="distilbert", source={}, max_sequence_length=512, inputs=NAMES, outputs=("start_logits",),
                    opset=17, versions={}, variants=variants)


def _ops_of(table: dict[str, frozenset[tuple[str, str]]]):
    return lambda path: table[Path(path).name]


# -- graphs ------------------------------------------------------------------------------------------

def test_graph_scan_matches_onnx(make_bundle) -> None:
    """The dependency-free protobuf scan finds exactly the operators the onnx package reads."""
    import onnx

    bundle = load_bundle(make_bundle("distilbert-qa-uncased"))
    for variant in bundle.manifest.variants.values():
        path = bundle.path / variant.file
        graph = onnx.load(str(path), load_external_data=False).graph
        assert graph_ops(path) == {(node.domain, node.op_type) for node in graph.node}, variant.file


def test_tensorrt_graph_rules() -> None:
    assert trt.graph_problem(PLAIN, "fp16") is None and trt.graph_problem(PLAIN, "fp32") is None
    assert "com.microsoft.Attention" in trt.graph_problem(FUSED, "fp16")
    assert nonstandard_ops(FUSED) == ["com.microsoft.Attention", "com.microsoft.SkipLayerNormalization"]
    assert "MatMulInteger" in trt.graph_problem(DYNAMIC_INT8, "int8")
    assert "QuantizeLinear" in trt.graph_problem(PLAIN, "int8")  # int8 must be explicit QDQ
    assert trt.graph_problem(QDQ, "int8") is None and trt.graph_problem(QDQ, "int8-static") is None


def test_tensorrt_gets_the_standard_graph_of_each_precision(tmp_path: Path) -> None:
    manifest = _manifest({"fp32": "onnx/model.onnx", "fp16": "onnx/model_fp16.onnx",
                          "int8": "onnx/model_quantized.onnx", "int8-static": "onnx/model_qdq.onnx"})
    ops = _ops_of({"model.onnx": PLAIN, "model_fp16.onnx": PLAIN, "model_quantized.onnx": DYNAMIC_INT8,
                   "model_qdq.onnx": QDQ})
    assert trt.choose_graph(manifest, tmp_path, "fp16", ops_of=ops)[0] == "fp16"
    assert trt.choose_graph(manifest, tmp_path, "int8", ops_of=ops)[0] == "int8-static"  # never MatMulInteger
    assert trt.choose_precision(manifest, tmp_path, "auto", ops_of=ops)[:2] == ("fp16", "fp16")


def test_no_tensorrt_graph_names_the_real_cause(tmp_path: Path) -> None:
    manifest = _manifest({"fp32": "onnx/model.onnx", "fp16": "onnx/model_fp16.onnx",
                          "int8": "onnx/model_quantized.onnx"})
    ops = _ops_of({"model.onnx": FUSED, "model_fp16.onnx": FUSED, "model_quantized.onnx": DYNAMIC_INT8})
    with pytest.raises(GraphUnsupportedError, match=r"fp16 \(onnx/model_fp16.onnx\): it has ONNX Runtime operators"):
        trt.choose_graph(manifest, tmp_path, "fp16", ops_of=ops)
    with pytest.raises(GraphUnsupportedError, match="dynamic int8 .*MatMulInteger") as info:
        trt.choose_graph(manifest, tmp_path, "int8", ops_of=ops)
    assert "re-export" in str(info.value) and "provider='cuda'" in str(info.value)
    with pytest.raises(GraphUnsupportedError, match="at fp16.* / .*at fp32"):
        trt.choose_precision(manifest, tmp_path, "auto", ops_of=ops)


# -- options, profile, cache -------------------------------------------------------------------------

def test_profile_does_not_follow_small_batch_sizes() -> None:
    cli = trt.TensorrtProfile.covering(max_length=512, batch_size=32)
    serve = trt.TensorrtProfile.covering(max_length=512, batch_size=8)
    assert cli == serve == trt.TensorrtProfile((1, 1), (1, 128), (32, 512))  # one engine for both
    assert trt.TensorrtProfile.covering(max_length=512, batch_size=33).max == (64, 512)
    assert trt.TensorrtProfile.covering(max_length=64, batch_size=1).opt == (1, 64)
    assert cli.holds(32, 512) and cli.holds(1, 1) and not cli.holds(33, 10)
    assert cli.options(NAMES) == {"trt_profile_min_shapes": "input_ids:1x1,attention_mask:1x1",
                                  "trt_profile_opt_shapes": "input_ids:1x128,attention_mask:1x128",
                                  "trt_profile_max_shapes": "input_ids:32x512,attention_mask:32x512"}


def test_tensorrt_options_put_precision_in_the_graph(tmp_path: Path) -> None:
    profile = trt.TensorrtProfile.covering(max_length=512, batch_size=8)
    common = dict(input_names=NAMES, profile=profile, cache_dir=tmp_path / "e", timing_dir=tmp_path / "t")
    fp16 = trt.tensorrt_options(precision="fp16", **common)
    int8 = trt.tensorrt_options(precision="int8-static", **common)
    fp32 = trt.tensorrt_options(precision="fp32", **common)
    assert fp16["trt_fp16_enable"] and fp16["trt_layer_norm_fp32_fallback"] and not fp16["trt_int8_enable"]
    assert int8["trt_int8_enable"] and int8["trt_fp16_enable"]
    assert not any(key.startswith("trt_int8_calibration") for key in int8)  # QDQ graphs take no table
    assert not fp32["trt_fp16_enable"] and not fp32["trt_int8_enable"]
    assert fp16["trt_engine_cache_path"] == str(tmp_path / "e") and fp16["trt_timing_cache_path"] == str(tmp_path / "t")
    assert fp16["trt_profile_max_shapes"] == "input_ids:32x512,attention_mask:32x512"


def test_engine_cache_is_keyed_by_sha256_and_created(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DISTILRT_CACHE_DIR", str(tmp_path / "user" / "cache"))  # nothing of it exists yet
    profile = trt.TensorrtProfile.covering(max_length=128, batch_size=1)
    one = trt.engine_cache_dir("a" * 64, precision="fp16", profile=profile)
    assert one.is_dir() and one.parent == tmp_path / "user" / "cache" / "tensorrt"
    assert one.name == f"{'a' * 24}-fp16-1x1-1x128-32x128"
    assert trt.engine_cache_dir("b" * 64, precision="fp16", profile=profile) != one  # other weights, other engines
    assert trt.engine_cache_dir("a" * 64, precision="int8", profile=profile) != one
    assert trt.timing_cache_dir().is_dir()
    monkeypatch.delenv("DISTILRT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "distilrt"


def test_unusable_cache_folder_is_a_typed_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file where the cache folder should be")
    with pytest.raises(CacheDirError, match="cannot create the TensorRT cache directory.*tensorrt_cache_dir="):
        trt.engine_cache_dir("c" * 64, precision="fp16", root=taken / "tensorrt",
                             profile=trt.TensorrtProfile.covering(max_length=8, batch_size=1))


def test_cuda_options_and_gpu_session_config() -> None:
    plan = prov.resolve_providers("cuda", available=[CUDA, CPU], device_id=1)
    assert plan.options[0] == {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC",
                               "do_copy_in_default_stream": True, "use_tf32": 0}
    assert plan.session_config == {"session.intra_op.allow_spinning": "0"}
    assert prov.resolve_providers("cpu", available=[CPU]).session_config == {}


def test_install_hints_never_pair_the_two_builds(monkeypatch) -> None:
    with pytest.raises(ProviderUnavailableError) as info:
        prov.resolve_providers("cuda", available=[CPU])
    text = str(info.value)
    assert "pip uninstall -y onnxruntime" in text and "onnxruntime-gpu" in text and "provider='cpu'" in text
    assert "distilrt[gpu]" in text  # only for an environment without onnxruntime
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(MissingDependencyError, match=r"distilrt\[cpu\].*onnxruntime-gpu"):
        prov.available_providers()


# -- building sessions -------------------------------------------------------------------------------

class _Options:
    def __init__(self) -> None:
        self.config: dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        self.config[key] = value


class _FakeOrt:
    """``InferenceSession`` stand-ins: one release honours ``enable_fallback``, an older one ignores it."""

    def __init__(self, *, honours_fallback: bool) -> None:
        self.honours = honours_fallback
        self.calls: list[dict[str, Any]] = []

    def InferenceSession(self, model, options, **kwargs):  # ORT's name
        self.calls.append(kwargs)
        error = "TensorRT EP failed: User needs to provide all the dynamic shape inputs with associated profiles"
        if self.honours and kwargs.get("enable_fallback") == 0:
            raise RuntimeError(error)
        print(f"EP Error {error} when using {kwargs['providers']}")
        print("Falling back to ['CUDAExecutionProvider', 'CPUExecutionProvider'] and retrying.")
        return type("Session", (), {"get_providers": lambda self: [CUDA, CPU]})()


def test_tensorrt_failure_is_raised_with_its_real_cause(monkeypatch) -> None:
    from distilrt.runtime.engines.onnxruntime import create_session

    plan = prov.resolve_providers("tensorrt", available=[TRT, CUDA, CPU], tensorrt={"trt_fp16_enable": True})
    fake, options = _FakeOrt(honours_fallback=True), _Options()
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    with pytest.raises(ProviderUnavailableError, match="on TensorrtExecutionProvider: TensorRT EP failed.*dynamic shape"):
        create_session("m.onnx", plan=plan, options=options)
    assert fake.calls[0]["enable_fallback"] == 0 and options.config == prov.GPU_SESSION_CONFIG
    older = _FakeOrt(honours_fallback=False)  # retries on CUDA by itself; its printed message is kept
    monkeypatch.setitem(sys.modules, "onnxruntime", older)
    printed: list[str] = []
    session = create_session("m.onnx", plan=plan, options=_Options(), printed=printed)
    with pytest.raises(ProviderUnavailableError, match="loaded only CUDAExecutionProvider.*dynamic shape inputs"):
        prov.check_session_providers(plan, session.get_providers(), cause=" ".join(printed))


def test_auto_replans_for_the_cpu_when_cuda_does_not_load(make_bundle, monkeypatch, caplog) -> None:
    """A GPU onnxruntime lists CUDA, but the session loads only the CPU: fp16 must not run there."""
    monkeypatch.setattr(prov, "available_providers", lambda: [CUDA, CPU])
    with caplog.at_level(logging.WARNING):
        qa = pipeline(model=make_bundle("distilbert-qa-uncased"), provider="auto")
    assert qa.session.plan.name == "cpu" and qa.session.providers == [CPU]
    assert qa.session.precision == "int8" and qa.session.path.name == "model_quantized.onnx"
    assert "did not load" in caplog.text and "at int8 instead of fp16" in caplog.text
    assert qa(question="Who?", context="Jim Henson was a puppeteer.")["answer"] is not None


def test_explicit_cuda_that_does_not_load_raises(make_bundle, monkeypatch) -> None:
    monkeypatch.setattr(prov, "available_providers", lambda: [CUDA, CPU])
    with pytest.raises(ProviderUnavailableError, match="loaded only CPUExecutionProvider.*provider='cpu'"):
        pipeline(model=make_bundle("distilbert-qa-uncased"), provider="cuda")


class Stop(Exception):
    """Raised in place of building an engine, once its arguments are recorded."""


def capture_engines(monkeypatch) -> list[Any]:
    """Record (precision, file precision, provider plan) of each engine the pipeline would build, then stop it."""
    built: list[Any] = []

    def capture(directory, manifest, precision, plan, settings, *, file_precision=None):
        built.append((precision, file_precision, plan))
        raise Stop

    monkeypatch.setattr(importlib.import_module("distilrt.runtime.pipeline"), "OrtEngine", capture)
    return built


def test_tensorrt_pipeline_plans_graph_options_and_cache(make_bundle, monkeypatch, tmp_path: Path) -> None:
    """With TensorRT listed, the pipeline hands it a standard-operator graph and a SHA-keyed engine cache."""
    bundle_dir = tmp_path / "qa"
    shutil.copytree(make_bundle("distilbert-qa-uncased"), bundle_dir, ignore=shutil.ignore_patterns(".cache"))
    manifest = load_bundle(bundle_dir).manifest
    monkeypatch.setattr(prov, "available_providers", lambda: [TRT, CUDA, CPU])
    built = capture_engines(monkeypatch)
    standard = [key for key, v in manifest.variants.items() if trt.graph_problem(graph_ops(bundle_dir / v.file), key)
                is None]
    assert {"fp32", "fp16"} <= set(standard)  # the plain export and its fp16 conversion
    for precision in ("fp32", "fp16"):
        if precision in standard:
            with pytest.raises(Stop):
                pipeline(model=bundle_dir, provider="tensorrt", precision=precision, batch_size=8,
                         tensorrt_cache_dir=tmp_path / "engines")
            chosen, key, plan = built[-1]
            options = plan.options[0]
            assert plan.names == [TRT, CUDA, CPU] and chosen == precision and key == precision
            assert Path(options["trt_engine_cache_path"]).is_dir()
            assert Path(options["trt_engine_cache_path"]).name.startswith(manifest.variants[key].sha256[:24])
            assert options["trt_profile_max_shapes"].startswith("input_ids:32x")
        else:  # a bundle without a standard graph of that precision: the typed error names the operators
            with pytest.raises(GraphUnsupportedError, match="com.microsoft"):
                pipeline(model=bundle_dir, provider="tensorrt", precision=precision,
                         tensorrt_cache_dir=tmp_path / "engines")
    if any(trt.graph_problem(graph_ops(bundle_dir / manifest.variant(key).file), "int8") is None
           for key in trt.graph_keys(manifest, "int8")):  # the bundle has a static QDQ int8 graph
        with pytest.raises(Stop):
            pipeline(model=bundle_dir, provider="tensorrt", precision="int8", tensorrt_cache_dir=tmp_path / "engines")
        assert built[-1][0] == "int8" and built[-1][1] != "int8" and built[-1][2].options[0]["trt_int8_enable"]
    else:
        with pytest.raises(GraphUnsupportedError, match="at int8: int8 .*com.microsoft|MatMulInteger"):
            pipeline(model=bundle_dir, provider="tensorrt", precision="int8", tensorrt_cache_dir=tmp_path / "engines")



def test_cuda_gets_onnx_runtimes_fused_fp16_graph(make_bundle, monkeypatch) -> None:
    monkeypatch.setattr(prov, "available_providers", lambda: [CUDA, CPU])
    built = capture_engines(monkeypatch)
    with pytest.raises(Stop):
        pipeline(model=make_bundle("distilbert-qa-uncased"), provider="cuda", precision="auto")
    precision, key, plan = built[-1]
    assert precision == "fp16" and key == "fp16-fused"  # Attention, SkipLayerNorm, Gelu as CUDA fp16 kernels
    assert plan.names == [CUDA, CPU] and plan.options[0]["use_tf32"] == 0
