"""Bundle loading, integrity, provider resolution, session options, the optimised-model cache, IO binding."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from distilrt.runtime import (
    BundleError,
    InputError,
    ProviderUnavailableError,
    TaskMismatchError,
    UnknownNameError,
    load_bundle,
    pipeline,
)
from distilrt.runtime.batching import length_sorted_batches
from distilrt.runtime.providers import PROVIDERS, check_session_providers, resolve_providers
from distilrt.runtime.session import SessionSettings, physical_cores, session_options

CPU, CUDA, TRT = PROVIDERS["cpu"], PROVIDERS["cuda"], PROVIDERS["tensorrt"]


# -- providers ---------------------------------------------------------------------------------------

def test_resolution_against_available_providers(caplog) -> None:
    assert resolve_providers("cpu", available=[CPU]).names == [CPU]
    plan = resolve_providers("cuda", available=[CUDA, CPU], device_id=1)
    assert plan.names == [CUDA, CPU] and plan.device == "cuda" and plan.options[0]["device_id"] == 1
    assert resolve_providers("auto", available=[TRT, CUDA, CPU]).name == "cuda"  # TensorRT is opt-in
    with caplog.at_level(logging.INFO, logger="distilrt.runtime.providers"):
        plan = resolve_providers("auto", available=["AzureExecutionProvider", CPU])
    assert plan.names == [CPU] and plan.device == "cpu"
    assert any("CUDAExecutionProvider is not in this onnxruntime" in r.message for r in caplog.records)
    with pytest.raises(ProviderUnavailableError, match="AzureExecutionProvider, CPUExecutionProvider") as info:
        resolve_providers("cuda", available=["AzureExecutionProvider", CPU])
    assert "onnxruntime-gpu" in str(info.value)
    with pytest.raises(ProviderUnavailableError, match="TensorrtExecutionProvider"):
        resolve_providers("tensorrt", available=[CUDA, CPU], tensorrt={})
    with pytest.raises(UnknownNameError, match="known: auto, cpu, cuda, tensorrt"):
        resolve_providers("gpu", available=[CPU])


def test_session_provider_check_after_build(caplog) -> None:
    explicit = resolve_providers("cuda", available=[CUDA, CPU])
    with pytest.raises(ProviderUnavailableError, match="loaded only CPUExecutionProvider"):
        check_session_providers(explicit, [CPU])
    assert check_session_providers(explicit, [CUDA, CPU]) is explicit
    auto = resolve_providers("auto", available=[CUDA, CPU])
    with caplog.at_level(logging.WARNING):
        fallback = check_session_providers(auto, [CPU])
    assert fallback.names == [CPU] and fallback.device == "cpu" and "falling back to the CPU" in caplog.text


def test_explicit_unavailable_provider_raises_from_pipeline(make_bundle) -> None:
    with pytest.raises(ProviderUnavailableError, match="CPUExecutionProvider"):
        pipeline(model=make_bundle("distilbert-qa-uncased"), provider="cuda")


# -- session options ---------------------------------------------------------------------------------

def test_session_options() -> None:
    import onnxruntime as ort

    assert 1 <= physical_cores() <= (__import__("os").cpu_count() or 1)
    options = session_options(SessionSettings())
    assert options.intra_op_num_threads == physical_cores()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    from distilrt.runtime.validation import logical_cpus

    options = session_options(SessionSettings(threads=logical_cpus(), optimization="basic"))
    assert options.intra_op_num_threads == logical_cpus()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(Exception, match="optimisation level"):
        SessionSettings(optimization="max")
    with pytest.raises(Exception, match="threads"):
        SessionSettings(threads=0)
    with pytest.raises(Exception, match="logical CPUs"):
        SessionSettings(threads=logical_cpus() + 1)


def test_length_sorted_batches() -> None:
    assert length_sorted_batches([5, 1, 9, 1, 3], 2) == [[1, 3], [4, 0], [2]]
    assert length_sorted_batches([], 4) == []
    with pytest.raises(ValueError):
        length_sorted_batches([1], 0)


# -- bundle loading and integrity ------------------------------------------------------------------------

def test_precision_auto_and_resolved_values(qa_copy: Path, caplog) -> None:
    qa = pipeline(model=qa_copy, provider="cpu")
    assert qa.task == "question-answering" and qa.precision == "int8" and qa.providers == [CPU]
    assert qa.manifest.name == "qa" or qa.manifest.task == "question-answering"
    bundle = load_bundle(qa_copy)
    assert bundle.choose_precision("auto", device="cuda") == "fp16"
    manifest = json.loads((qa_copy / "manifest.json").read_text())
    del manifest["variants"]["int8"]
    (qa_copy / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.INFO, logger="distilrt.runtime.bundle"):
        assert load_bundle(qa_copy).choose_precision("auto", device="cpu") == "fp32"
    assert "no usable int8 variant" in caplog.text
    with pytest.raises(BundleError, match="has no int8 variant; it has: fp32, fp16"):
        pipeline(model=qa_copy, precision="int8", provider="cpu")
    with pytest.raises(UnknownNameError, match="known: auto, fp32, fp16, int8"):
        pipeline(model=qa_copy, precision="int4", provider="cpu")


def test_task_errors(qa_copy: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown task 'summarization'"):
        pipeline("summarization", model=qa_copy)
    with pytest.raises(TaskMismatchError, match="exported for question-answering, not fill-mask"):
        pipeline("fill-mask", model=qa_copy)
    with pytest.raises(BundleError, match="does not exist"):
        pipeline(model=qa_copy / "nope")


def test_tampered_and_missing_files_are_refused(qa_copy: Path) -> None:
    model = qa_copy / "onnx" / "model_flash.onnx"  # the fp32 graph the CPU provider prefers
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the manifest"):
        pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True)
    (qa_copy / "onnx" / "model_fp16.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        pipeline(model=qa_copy, precision="fp16", provider="cpu")
    assert pipeline(model=qa_copy, precision="int8", provider="cpu").precision == "int8"  # untouched variant


def test_cpu_runs_the_flash_graph_and_old_manifests_still_load(qa_copy: Path) -> None:
    qa = pipeline(model=qa_copy, precision="fp32", provider="cpu")
    assert qa.session.path.name == "model_flash.onnx"
    answer = qa(question="Who was Jim Henson?", context="Jim Henson was a nice puppet maker.")
    # a manifest from before extra graphs (no "graphs", the timed choice in details) loads the standard file
    manifest = json.loads((qa_copy / "manifest.json").read_text())
    del manifest["graphs"]
    manifest["variants"]["fp32"]["details"] = {"graph": "none", "selection_ms": {"none": 1.0}}
    (qa_copy / "manifest.json").write_text(json.dumps(manifest))
    old = pipeline(model=qa_copy, precision="fp32", provider="cpu")
    assert old.session.path.name == "model.onnx" and old.bundle.manifest.variant("fp32").graph == "plain"
    again = old(question="Who was Jim Henson?", context="Jim Henson was a nice puppet maker.")
    assert (again["start"], again["end"]) == (answer["start"], answer["end"])
    assert again["score"] == pytest.approx(answer["score"], abs=1e-4)
    with pytest.raises(BundleError, match="no fp32-flash variant"):
        old.bundle.manifest.variant("fp32-flash")


def test_tokenizer_larger_than_embedding_is_refused(qa_copy: Path) -> None:
    config = json.loads((qa_copy / "config.json").read_text())
    config["vocab_size"] = 1000
    (qa_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="config.json does not match the manifest"):
        pipeline(model=qa_copy, provider="cpu")
    # sealed again with the edited config, the vocabulary check itself refuses it
    from distilrt.runtime.manifest import Manifest, seal

    seal(Manifest.read(qa_copy), qa_copy).write(qa_copy)
    with pytest.raises(BundleError, match=r"30522 tokens but the model embeds only 1000"):
        pipeline(model=qa_copy, provider="cpu")


# -- optimised-model cache -------------------------------------------------------------------------

def test_optimized_cache_is_reused_verified_and_invalidated(qa_copy: Path) -> None:
    first = pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True)
    assert not first.session.from_cache
    entries = sorted(p.name for p in (qa_copy / ".cache").iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".onnx")
    manifest = json.loads((qa_copy / "manifest.json").read_text())
    assert all(".cache" not in v["file"] for v in manifest["variants"].values())
    second = pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True)
    assert second.session.from_cache
    question, context = "Who was Jim Henson?", "Jim Henson was a nice puppet maker."
    assert same_answers([[second(question=question, context=context)]], [[first(question=question, context=context)]])

    cached = next((qa_copy / ".cache").glob("*.onnx"))
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")  # damaged cache: rebuilt, never run
    third = pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True)
    assert not third.session.from_cache
    assert pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True).session.from_cache

    # a re-exported variant has a new SHA-256: the old entry is not used, and is dropped on the next save
    old_key = next((qa_copy / ".cache").glob("*.onnx")).name
    import hashlib

    import onnx

    model = qa_copy / "onnx" / "model_flash.onnx"
    graph = onnx.load(str(model))
    onnx.helper.set_model_props(graph, {"re-exported": "yes"})  # same weights, new bytes
    onnx.save(graph, str(model))
    manifest["graphs"]["fp32-flash"]["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    (qa_copy / "manifest.json").write_text(json.dumps(manifest))
    fresh = pipeline(model=qa_copy, precision="fp32", provider="cpu", optimized_cache=True)
    assert not fresh.session.from_cache
    names = [p.name for p in (qa_copy / ".cache").glob("*.onnx")]
    assert old_key not in names and len(names) == 1


def test_cache_is_off_by_default(qa_copy: Path) -> None:
    assert not pipeline(model=qa_copy, precision="fp32", provider="cpu").session.from_cache
    assert not (qa_copy / ".cache").exists()


# -- IO binding (the CUDA path, exercised here on the CPU device) ------------------------------------------

def same_answers(a: list, b: list) -> bool:
    """Same spans and texts, scores within 1e-6 relative."""
    flat_a = [x for row in a for x in row]
    flat_b = [x for row in b for x in row]
    return len(flat_a) == len(flat_b) and all(
        (x["answer"], x["start"], x["end"]) == (y["answer"], y["start"], y["end"])
        and x["score"] == pytest.approx(y["score"], rel=1e-6) for x, y in zip(flat_a, flat_b))


def test_io_binding_path_matches_plain_run_and_is_thread_safe(make_bundle) -> None:
    bundle = make_bundle("distilbert-qa-uncased")
    plain = pipeline(model=bundle, precision="fp32", provider="cpu", optimized_cache=False)
    bound = pipeline(model=bundle, precision="fp32", provider="cpu", io_binding=True, optimized_cache=False)
    assert bound.session.io_binding and not plain.session.io_binding
    questions = ["Who was Jim Henson?", "What did he make?", "Where?"] * 3
    contexts = ["Jim Henson was a nice puppet maker.", "He made The Muppets, a show with puppets.",
                "He was born in Greenville, Mississippi in 1936."] * 3
    expected = plain(question=questions, context=contexts, top_k=2)
    assert same_answers(bound(question=questions, context=contexts, top_k=2), expected)
    assert same_answers(bound(question=questions, context=contexts, top_k=2), expected)  # reused buffers

    results: list = [None] * 6
    errors: list = []

    def work(slot: int) -> None:
        try:
            results[slot] = bound(question=questions, context=contexts, top_k=2)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for result in results:
        assert same_answers(result, expected)


def test_outputs_are_float32(make_bundle) -> None:
    fe = pipeline(model=make_bundle("distilbert-features-cased"), precision="fp16", provider="cpu")
    states = fe(["A man is eating food.", "Hi"], pooling="none", return_tensors=True)
    assert all(s.dtype == np.float32 for s in states)


# -- ONNX Runtime graph rewrites -------------------------------------------------------------------

def _cached_op_types(bundle: Path, **kwargs) -> set[str]:
    """Op types of the graph ONNX Runtime optimised for a CPU int8 session (read from the cache file)."""
    import onnx

    cache = bundle / ".cache"
    shutil.rmtree(cache, ignore_errors=True)
    pipeline(model=bundle, precision="int8", provider="cpu", optimized_cache=True, **kwargs)
    (saved,) = cache.glob("*.onnx")
    return {node.op_type for node in onnx.load(str(saved)).graph.node}


def test_cpu_sessions_leave_out_skip_layer_norm_fusion(qa_copy: Path) -> None:
    assert SessionSettings().optimizers_to_disable("cpu") == ("SkipLayerNormFusion",)
    assert SessionSettings().optimizers_to_disable("cuda") == ()
    assert SessionSettings(disabled_optimizers=()).optimizers_to_disable("cpu") == ()
    default = _cached_op_types(qa_copy)
    assert "SkipLayerNormalization" not in default and "LayerNormalization" in default
    # the same graph with every rewrite on does get the fused kernel: the default really changes the session
    assert "SkipLayerNormalization" in _cached_op_types(qa_copy, disabled_optimizers=())


def test_disabled_optimizers_must_be_names() -> None:
    with pytest.raises(InputError, match="disabled_optimizers"):
        SessionSettings(disabled_optimizers="SkipLayerNormFusion")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="disabled_optimizers"):
        SessionSettings(disabled_optimizers=("",))


# -- streams: bulk work on one core per stream ------------------------------------------------------

def test_streams_give_the_same_answers_on_stream_threads(make_bundle) -> None:
    bundle = make_bundle("distilbert-qa-uncased")
    questions = ["Who was Jim Henson?", "What did he make?", "Where?", "When did the bridge open to traffic?"] * 3
    contexts = ["Jim Henson was a nice puppet maker from the United States.",
                "He made puppets and television shows.", "In Paris, France, near the river.",
                "The bridge opened to traffic in 1937 after four years of construction."] * 3
    one = pipeline(model=bundle, precision="int8", provider="cpu", batch_size=1, threads=2)
    two = pipeline(model=bundle, precision="int8", provider="cpu", batch_size=1, threads=2, streams=2)
    two(question=questions[0], context=contexts[0])  # one batch: runs on the main session
    assert two._stream_session is None

    threads: set[str] = set()
    main_calls: list[int] = []
    real_main = two.session.run
    two.session.run = lambda feeds: main_calls.append(1) or real_main(feeds)  # type: ignore[method-assign]
    expected = one(question=questions, context=contexts)
    got = two(question=questions, context=contexts)
    stream = two._stream_session
    assert stream is not None and stream is not two.session
    real_stream = stream.run

    def recording(feeds):
        threads.add(threading.current_thread().name)
        return real_stream(feeds)

    stream.run = recording  # type: ignore[method-assign]
    again = two(question=questions, context=contexts)
    assert same_answers([got], [expected]) and same_answers([again], [expected])
    assert not main_calls  # bulk calls ran on the streams' session only
    assert threads and all(name.startswith("distilrt-stream") for name in threads)
    assert two._stream_session is stream  # built once, then reused


@pytest.mark.parametrize("streams", [0, -1, True, 1.5, "2"])
def test_streams_must_be_a_positive_integer(make_bundle, streams) -> None:
    with pytest.raises(InputError, match="streams"):
        pipeline(model=make_bundle("distilbert-qa-uncased"), provider="cpu", streams=streams)
