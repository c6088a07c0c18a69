"""Per-host tuning: the profile's key, write/read and fallbacks, the default choice, and `distilrt tune`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from distilrt.runtime import load_bundle, pipeline
from distilrt.runtime import profile as prof
from distilrt.runtime.bundle import Bundle
from distilrt.runtime.engines import choose
from distilrt.runtime.engines import openvino as ov_engine
from distilrt.runtime.errors import UnknownNameError, UnsupportedPrecisionError
from distilrt.runtime.hostinfo import physical_cores
from distilrt.runtime.manifest import Variant

AMX = {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}
AVX2 = {"avx2", "fma"}


def with_static_int8(bundle: Bundle, *, target_met: bool = True) -> Bundle:
    variants = dict(bundle.manifest.variants)
    variants["int8-static"] = Variant("int8-static", "onnx/model_qdq.onnx", 1, "0" * 64,
                                      details={"target_met": target_met})
    return replace(bundle, manifest=replace(bundle.manifest, variants=variants))


# -- the profile -------------------------------------------------------------------------------------

def test_host_key_follows_what_timings_depend_on(cache: Path) -> None:
    facts = prof.host_facts()
    assert {"cpu", "flags", "physical_cores", "versions"} <= set(facts) and "onnxruntime" in facts["versions"]
    assert prof.host_key(facts) == prof.host_key(json.loads(json.dumps(facts)))
    for change in ({"cpu": "another CPU"}, {"physical_cores": facts["physical_cores"] + 1},
                   {"flags": sorted(set(facts["flags"]) ^ {"amx_bf16"})},
                   {"versions": {**facts["versions"], "onnxruntime": "0.0.1"}}):
        assert prof.host_key({**facts, **change}) != prof.host_key(facts), change
    assert prof.profile_path().parent == cache / "profiles"


def test_profile_write_read_and_every_fallback(qa_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load_bundle(qa_copy).manifest
    entry, why = prof.lookup(manifest)
    assert entry is None and "no tuning profile for this host" in why
    latency = prof.Setting("openvino", "bf16", 2, 1)
    bulk = prof.Setting("openvino", "bf16", 2, 2)
    path = prof.write_entry(manifest, latency=latency, bulk=bulk, workloads={"1x128": {latency.label: 1.0}})
    assert path.parent == cache / "profiles" and path.is_file()
    entry, why = prof.lookup(manifest)
    assert entry is not None and entry.latency == latency and entry.bulk == bulk and "tuned on this host" in why
    # a second bundle's entry sits beside the first
    other = replace(manifest, variants={k: replace(v, sha256="f" * 64) for k, v in manifest.variants.items()})
    assert prof.lookup(other)[0] is None and "re-exported" in prof.lookup(other)[1]
    prof.write_entry(other, latency=bulk, bulk=None, workloads={})
    assert prof.lookup(manifest)[0].latency == latency and prof.lookup(other)[0].bulk is None
    # stale: another onnxruntime version (or CPU) gives another key, so this profile is not found
    real = prof.host_facts()
    monkeypatch.setattr(prof, "host_facts", lambda: {**real, "versions": {**real["versions"], "onnxruntime": "9.9"}})
    assert prof.lookup(manifest)[0] is None
    monkeypatch.setattr(prof, "host_facts", lambda: real)
    # unreadable, other format or malformed entries are ignored, never trusted
    data = json.loads(path.read_text())
    data["bundles"][prof.bundle_key(manifest)]["choice"]["latency"] = {"engine": "openvino"}
    path.write_text(json.dumps(data))
    assert prof.lookup(manifest)[0] is None and "malformed" in prof.lookup(manifest)[1]
    path.write_text(json.dumps({**data, "format": 99}))
    assert prof.lookup(manifest)[0] is None
    path.write_text("{not json")
    assert prof.lookup(manifest)[0] is None


# -- choosing the engine -----------------------------------------------------------------------------

def test_default_choice_by_cpu_flags(qa_copy: Path) -> None:
    bundle = load_bundle(qa_copy)
    static = with_static_int8(bundle)
    pick = choose.default_choice(static, flags=AMX, openvino=True, cuda=False)
    assert (pick.engine, pick.precision, pick.source) == ("openvino", "int8-static", "default")
    # no regression elsewhere: ONNX Runtime as before (precision auto -> int8 on CPU, fp16 on CUDA)
    assert choose.default_choice(static, flags=AVX2, openvino=True, cuda=False).engine == "onnxruntime"
    assert "no AMX-BF16" in choose.default_choice(static, flags=AVX2, openvino=True, cuda=False).reason
    assert "not installed" in choose.default_choice(static, flags=AMX, openvino=False, cuda=False).reason
    assert choose.default_choice(static, flags=AMX, openvino=True, cuda=True).engine == "onnxruntime"
    no_static = choose.default_choice(bundle, flags=AMX, openvino=True, cuda=False)
    assert no_static.engine == "onnxruntime" and "no static int8" in no_static.reason
    missed = choose.default_choice(with_static_int8(bundle, target_met=False), flags=AMX, openvino=True, cuda=False)
    assert missed.engine == "onnxruntime"


def test_auto_without_a_profile_stays_on_onnxruntime_on_cpus_without_amx(qa_copy: Path, cache: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    static = with_static_int8(load_bundle(qa_copy))
    monkeypatch.setattr(choose, "_cuda_usable", lambda: False)
    monkeypatch.setattr(ov_engine, "available", lambda: True)
    for module in (choose, ov_engine):
        monkeypatch.setattr(module, "cpu_flags", lambda: AVX2)
    # the whole path a pipeline takes: no profile on this host, then the default by CPU flags
    pick = choose.choose_engine(static, precision="auto", provider="auto")
    assert (pick.engine, pick.provider, pick.source) == ("onnxruntime", "auto", "default")
    assert "no tuning profile" in pick.reason and "no AMX-BF16" in pick.reason
    qa = pipeline(model=qa_copy)
    assert (qa.session.describe().engine, qa.precision) == ("onnxruntime", "int8")
    for module in (choose, ov_engine):
        monkeypatch.setattr(module, "cpu_flags", lambda: AMX)
    assert choose.choose_engine(static, precision="auto", provider="auto").engine == "openvino"


def test_explicit_requests(qa_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = load_bundle(qa_copy)
    assert choose.choose_engine(bundle, precision="bf16", provider="auto").engine == "openvino"
    assert choose.choose_engine(bundle, precision="int8", provider="cpu").engine == "onnxruntime"
    monkeypatch.setattr(ov_engine, "cpu_flags", lambda: AVX2)
    assert choose.choose_engine(bundle, precision="auto", provider="openvino").precision == "fp32"
    monkeypatch.setattr(ov_engine, "cpu_flags", lambda: AMX)
    assert choose.choose_engine(bundle, precision="auto", provider="openvino").precision == "bf16"
    assert choose.choose_engine(with_static_int8(bundle), precision="auto", provider="openvino").precision == "int8-static"
    with pytest.raises(UnsupportedPrecisionError, match="runs on OpenVINO only"):
        choose.choose_engine(bundle, precision="bf16", provider="tensorrt")
    with pytest.raises(UnknownNameError, match="known: auto, cpu, cuda, tensorrt, openvino"):
        choose.choose_engine(bundle, precision="auto", provider="gpu")


def test_auto_follows_the_profile_and_info_says_why(qa_copy: Path, cache: Path, capsys) -> None:
    from distilrt.runtime.cli import main

    assert main(["info", str(qa_copy)]) == 0
    assert "[default]" in capsys.readouterr().out
    manifest = load_bundle(qa_copy).manifest
    prof.write_entry(manifest, latency=prof.Setting("onnxruntime", "fp32", 1, 1),
                     bulk=prof.Setting("onnxruntime", "fp32", 2, 2), workloads={})
    qa = pipeline(model=qa_copy)
    assert qa.precision == "fp32" and qa.session.describe().threads == 1 and qa.streams == 2
    assert pipeline(model=qa_copy, streams=1).streams == 1  # an explicit argument wins
    assert pipeline(model=qa_copy, precision="int8").precision == "int8"  # the profile answers auto/auto only
    assert main(["info", str(qa_copy)]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime fp32, 1 threads, 2 streams for bulk calls [profile]" in out


# -- distilrt tune -----------------------------------------------------------------------------------

def test_tune_measures_records_and_auto_uses_it(qa_copy: Path, cache: Path, capsys) -> None:
    from distilrt.runtime import tune as tuning
    from distilrt.runtime.cli import main

    result = tuning.tune(qa_copy, budget_s=4)
    assert {"1x128", "1x384", "8x128", "bulk"} <= set(result.workloads) <= {"1x128", "1x384", "8x128", "bulk",
                                                                            "bulk-streams"}
    labels = set(result.workloads["bulk"])
    cores = physical_cores()
    assert {f"onnxruntime/int8/t{cores}/s1", f"onnxruntime/fp32/t{cores}/s1"} <= labels
    assert all(ms > 0 for per in result.workloads.values() for ms in per.values())
    assert all(set(result.workloads[n]) <= labels for n in ("1x128", "1x384", "8x128"))
    assert result.latency.streams == 1 and result.latency.label in result.workloads["1x128"]
    assert result.bulk is not None and result.bulk.label in {*labels, *result.workloads.get("bulk-streams", {})}
    if cores > 1:  # the bulk finalists were timed again beside their one-stream-per-core forms
        assert any(label.endswith(f"/s{cores}") for label in result.workloads["bulk-streams"])
    if ov_engine.available():
        assert any(label.startswith("openvino/") for label in labels)
        assert result.fidelity and all(0 <= f["top1_agreement"] <= 1 for f in result.fidelity.values())
        assert all(f["max_rel_diff"] <= tuning.MAX_FLOAT_REL_DIFF for label, f in result.fidelity.items()
                   if "/bf16" in label or "/fp32" in label)
    assert result.skipped["onnxruntime/int8-static"]
    graphs = {s.graph for s in map(prof.Setting.from_dict, [{"engine": "x", "precision": "fp32", "threads": 1,
                                                             "graph": label.split("/")[1].partition(":")[2]}
                                                            for label in labels])}
    assert {"fp32-flash", "fp32-fused"} <= graphs  # the bundle's extra graphs are candidates too
    entry, _ = prof.lookup(load_bundle(qa_copy).manifest)
    assert entry is not None and entry.latency == result.latency and entry.bulk == result.bulk
    recorded = json.loads(result.profile.read_text())["bundles"][prof.bundle_key(load_bundle(qa_copy).manifest)]
    assert recorded["workloads"] == result.workloads and "round-robin" in recorded["method"]
    qa = pipeline(model=qa_copy)
    assert (qa.session.describe().engine, qa.precision) == (result.latency.engine, result.latency.precision)
    assert main(["tune", str(qa_copy), "--budget-s", "0"]) == 2
    assert "budget_s must be a positive number" in capsys.readouterr().err


def test_tune_leaves_out_candidates_that_miss_fidelity(qa_copy: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from distilrt.runtime import tune as tuning

    manifest = json.loads((qa_copy / "manifest.json").read_text())
    for name in ("int8", "int8-static"):
        if name in manifest["variants"]:
            manifest["variants"][name]["details"]["target_met"] = False
    (qa_copy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(tuning, "MAX_FLOAT_REL_DIFF", -1.0)  # no OpenVINO float candidate is that close
    result = tuning.tune(qa_copy, budget_s=2, write=False)
    labels = set(result.workloads["bulk"])
    assert labels and all(label.startswith(("onnxruntime/fp32/", "onnxruntime/fp32:")) for label in labels)
    assert "missed the target" in result.skipped["onnxruntime/int8"]
    # benchmark stand-ins (random weights) may keep them: their recorded agreement is noise
    kept, skipped = tuning.candidates(load_bundle(qa_copy), ignore_recorded_agreement=True)
    assert any(c.setting.label.startswith("onnxruntime/int8/") for c in kept) and "onnxruntime/int8" not in skipped
    if ov_engine.available():
        assert any("differs from ONNX Runtime fp32" in why for label, why in result.skipped.items()
                   if label.startswith("openvino/"))


def test_tune_checks_openvino_int8_against_onnxruntime_on_the_same_file(qa_copy: Path, cache: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that computes some shape wrongly is caught before it is timed: each OpenVINO int8 candidate
    runs CHECK_SHAPES (32 tokens among them) beside ONNX Runtime running the same file."""
    from distilrt.runtime import tune as tuning

    if not ov_engine.available():
        pytest.skip("openvino is not installed")
    assert any(tokens == 32 for _, tokens in tuning.CHECK_SHAPES)
    result = tuning.tune(qa_copy, budget_s=2, write=False, ignore_recorded_agreement=True)
    int8 = {label: f for label, f in result.fidelity.items() if "/int8" in label}
    assert int8 and all(f["against"] == f"onnxruntime/{label.split('/')[1]}" for label, f in int8.items())
    assert all(f["max_rel_diff"] <= tuning.MAX_SAME_FILE_REL_DIFF for f in int8.values())
    monkeypatch.setattr(tuning, "MAX_SAME_FILE_REL_DIFF", -1.0)  # nothing is that close: every int8 one is out
    result = tuning.tune(qa_copy, budget_s=2, write=False, ignore_recorded_agreement=True)
    assert not any(label.startswith("openvino/int8") for label in result.workloads["bulk"])
    assert all("differs from ONNX Runtime int8" in result.skipped[label] for label in int8)


def test_bulk_batches_shrink_when_every_candidates_buffers_would_not_fit() -> None:
    """A full-size fill-mask bundle's bulk logits (50,265 floats a token) times seven candidates once took
    23.6 GB; the bulk batch halves until the estimate fits in half the available memory."""
    from distilrt.runtime import tune as tuning

    logits = 50265 * 4
    assert tuning.bulk_batch_size(candidates=7, tokens=384, output_bytes_per_token=logits, available=None) == 8
    assert tuning.bulk_batch_size(candidates=7, tokens=384, output_bytes_per_token=2 * 4,
                                  available=2 << 30) == 8  # QA: two logits a token
    big = tuning.bulk_batch_size(candidates=7, tokens=384, output_bytes_per_token=logits, available=24 << 30)
    small = tuning.bulk_batch_size(candidates=7, tokens=384, output_bytes_per_token=logits, available=8 << 30)
    assert 1 <= small < big < 8
    assert 7 * tuning.BULK_FOOTPRINT_FACTOR * big * 384 * logits <= (24 << 30) * tuning.BULK_MEMORY_SHARE
    assert tuning.bulk_batch_size(candidates=7, tokens=384, output_bytes_per_token=logits, available=1 << 20) == 1
    batches = tuning._bulk_batches(["input_ids", "attention_mask"], vocab=100, max_len=64, batch_size=small)
    assert sum(b["input_ids"].shape[0] for b in batches) == tuning.BULK_SEQUENCES
    assert max(b["input_ids"].shape[0] for b in batches) == small
