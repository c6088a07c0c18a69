"""The comparison runner: every system on every workload of every model, in one process and one run."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import gemm, workloads
from .machine import machine_info
from .models import MODELS, BenchModel, int8_choice, prepare
from .systems import SYSTEMS, distilrt_available, load, unavailable
from .timing import time_calls, time_pass


@dataclass(frozen=True)
class Workload:
    key: str
    kind: str  # "latency": p50/p95/p99 of one call; "throughput": items per second over a fixed set
    inputs: list[Any]
    batch_sizes: tuple[int, ...]  # latency: exactly one; throughput: candidates, the best is kept
    shape: tuple[int, int] | None = None  # (batch, tokens) when every input has a known length
    note: str = ""


@dataclass
class Settings:
    threads: int = 2
    quick: bool = False
    latency_seconds: float = 3.0
    min_runs: int = 20
    throughput_repeats: int = 2
    peak_seconds: float = 1.0
    coldstart_repeats: int = 3
    tune_budget_s: float = 120.0  # ``distilrt tune`` for the tuned row, when this host has no profile entry
    models: tuple[str, ...] = tuple(MODELS)
    systems: tuple[str, ...] = tuple(SYSTEMS)
    work_dir: Path = field(default_factory=lambda: Path("~/.cache/distilrt-bench").expanduser())

    @classmethod
    def quick_mode(cls, **overrides: Any) -> "Settings":
        base = dict(quick=True, latency_seconds=0.3, min_runs=5, throughput_repeats=1, peak_seconds=0.3,
                    coldstart_repeats=1, tune_budget_s=30.0, models=("distilbert-qa",))
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "quick": self.quick, "latency_seconds": self.latency_seconds,
                "min_runs": self.min_runs, "throughput_repeats": self.throughput_repeats,
                "peak_seconds": self.peak_seconds, "coldstart_repeats": self.coldstart_repeats,
                "tune_budget_s": self.tune_budget_s,
                "models": list(self.models), "systems": list(self.systems), "work_dir": str(self.work_dir)}


def workloads_for(model: BenchModel, *, quick: bool) -> list[Workload]:
    if model.task == "question-answering":
        if quick:
            return [Workload("qa-b1-128", "latency", [workloads.qa_pair(128)], (1,), (1, 128)),
                    Workload("qa-16-mixed", "throughput", workloads.throughput_pairs()[:16], (8,),
                             note="first 16 of the 256 mixed-length pairs, batch 8 only")]
        loads = [Workload(f"qa-b1-{n}", "latency", [workloads.qa_pair(n)], (1,), (1, n)) for n in workloads.QA_LENGTHS]
        eight = [workloads.qa_pair(128, seed=workloads.SEED + 17 * i) for i in range(8)]
        loads.append(Workload("qa-b8-128", "latency", eight, (8,), (8, 128)))
        loads.append(Workload("qa-256-mixed", "throughput", workloads.throughput_pairs(), (1, 8, 32),
                              note="256 pairs of 32-384 tokens"))
        return loads
    if model.task == "fill-mask":
        mask = "<mask>" if "roberta" in model.source else "[MASK]"
        texts = workloads.fill_mask_texts(mask, workloads.FILL_MASK_BATCH)
        return [Workload("fm-b1", "latency", texts[:1], (1,)),
                Workload(f"fm-{len(texts)}-mixed", "throughput", texts, (1, 8, 32),
                         note=f"{len(texts)} texts of 6-24 words, top_k=5")]
    sentences = workloads.sentences()
    return [Workload("embed-b1", "latency", sentences[:1], (1,)),
            Workload("embed-1000", "throughput", sentences, (8, 32, 128), note="1,000 sentences of 6-40 words")]


class Progress:
    """One line per measurement on stderr, with elapsed time."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=self.stream, flush=True)


def _best_batch(runner: Any, work: Workload, say: Callable[[str], None]) -> tuple[int, int, dict[str, float]]:
    """The (batch size, streams) with the best throughput on a subset (the first 64 inputs).

    Streams other than 1 are tried only for systems that offer them (distilrt's ``streams``).
    """
    settings = [(size, streams) for streams in runner.streams for size in work.batch_sizes]
    if len(settings) == 1:
        return settings[0][0], settings[0][1], {}
    subset = work.inputs[:64]
    runner.run(subset[:8], work.batch_sizes[0])  # warm-up: first calls allocate and pick kernels
    rates = {}
    for size, streams in settings:
        if streams > 1:
            runner.run(subset[:8], size, streams)  # builds the streams' session outside the timing
        start = time.perf_counter()
        runner.run(subset, size, streams)
        rates[_setting(size, streams)] = len(subset) / (time.perf_counter() - start)
    best = max(rates, key=rates.get)
    say(f"    settings tried on {len(subset)} inputs: "
        + ", ".join(f"{k}: {v:.1f}/s" for k, v in rates.items()) + f" -> {best}")
    size, streams = next(s for s in settings if _setting(*s) == best)
    return size, streams, {k: round(v, 2) for k, v in rates.items()}


def _setting(size: int, streams: int) -> str:
    """"8" for batch 8; "1x2" for batch 1 on 2 streams."""
    return str(size) if streams == 1 else f"{size}x{streams}"


def measure_system(runner: Any, work: Workload, settings: Settings, say: Callable[[str], None]) -> dict[str, Any]:
    row: dict[str, Any] = {"workload": work.key, "kind": work.kind, "items": len(work.inputs)}
    if work.kind == "latency":
        size = work.batch_sizes[0]
        latency = time_calls(lambda: runner.run(work.inputs, size), seconds=settings.latency_seconds,
                             min_runs=settings.min_runs)
        row.update(batch_size=size, latency_ms=latency.to_dict(),
                   throughput=round(len(work.inputs) / (latency.p50 / 1000), 2))
        say(f"    p50 {latency.p50:8.2f} ms  p95 {latency.p95:8.2f}  p99 {latency.p99:8.2f}  ({latency.runs} runs)")
    else:
        size, streams, tried = _best_batch(runner, work, say)
        # Tuning already warmed the system up when it tried several sizes.
        seconds = time_pass(lambda: runner.run(work.inputs, size, streams), repeats=settings.throughput_repeats,
                            warmup=not tried)
        row.update(batch_size=size, streams=streams, batch_sizes_tried=tried, seconds=round(seconds, 4),
                   throughput=round(len(work.inputs) / seconds, 2))
        say(f"    {row['throughput']:8.1f} items/s at batch {size}" + (f" on {streams} streams" if streams > 1 else ""))
    return row


def run(settings: Settings, *, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything ``settings`` asks for and return the result document."""
    say = say or Progress()
    started = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(settings.threads), "settings": settings.to_dict(),
                              "rows": [], "skipped": [], "models": {}}
    missing = distilrt_available()
    systems = list(settings.systems)
    ours = [s for s in systems if s.startswith("distilrt")]
    if missing and ours:
        result["skipped"].append({"systems": ours, "reason": missing})
        say(f"skipping distilrt rows: {missing}")
        systems = [s for s in systems if s not in ours]
    for family in dict.fromkeys(SYSTEMS[s].family for s in systems if not s.startswith("distilrt")):
        reason = unavailable(next(SYSTEMS[s] for s in systems if SYSTEMS[s].family == family))
        if reason:
            left_out = [s for s in systems if SYSTEMS[s].family == family]
            result["skipped"].append({"systems": left_out, "reason": reason})
            say(f"skipping {', '.join(left_out)}: {reason}")
            systems = [s for s in systems if s not in left_out]

    say(f"preparing models in {settings.work_dir} (built once, then cached)")
    paths = prepare(list(settings.models), settings.work_dir, progress=say)

    peaks = _peaks(settings, say)
    if "distilrt-auto" in systems:
        result["tuned"] = {key: _ensure_tuned(paths[key]["bundle"], settings, say,
                                              random_weights=MODELS[key].random_weights) for key in settings.models}

    for key in settings.models:
        model = MODELS[key]
        config = json.loads((paths[key]["checkpoint"] / "config.json").read_text())
        result["models"][key] = {"label": model.label, "task": model.task, "random_weights": model.random_weights,
                                 "paths": {k: str(v) for k, v in paths[key].items()},
                                 "int8": int8_choice(paths[key]["bundle"])}
        loads = workloads_for(model, quick=settings.quick)
        for system in systems:
            spec = SYSTEMS[system]
            say(f"{key}: loading {spec.label}")
            try:
                runner = load(spec, model, paths[key], threads=settings.threads)
            except Exception as exc:  # one system that cannot load must not cost the rest of the run
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                result["skipped"].append({"systems": [system], "model": key, "reason": reason})
                say(f"    {system} skipped for {key}: {reason}")
                continue
            precision = runner.engine.get("precision", spec.precision)
            if runner.engine:
                say(f"    runs on {runner.engine['engine']} {precision} ({runner.engine['file']}, "
                    f"{runner.engine['threads']} threads, {runner.engine['streams']} streams)")
            try:
                for work in loads:
                    say(f"  {key} {work.key} {system}")
                    try:
                        row = measure_system(runner, work, settings, say)
                    except Exception as exc:  # a system that fails mid-run loses its remaining rows, not the run
                        reason = f"failed at {work.key}: {type(exc).__name__}: {str(exc)[:300]}"
                        result["skipped"].append({"systems": [system], "model": key, "reason": reason})
                        say(f"    {system} skipped for {key}: {reason}")
                        break
                    row.update(model=key, system=system, label=spec.label, family=spec.family,
                               precision=precision, note=work.note, **({"engine": runner.engine} if runner.engine else {}))
                    if work.shape and work.kind == "latency":
                        _add_efficiency(row, config, work, model, peaks)
                    result["rows"].append(row)
            finally:
                runner.close()
    # Measured again after the rows, the higher kept: other load on the machine only ever lowers a peak.
    peaks = best_peaks(peaks, _peaks(settings, say))
    result["peaks"] = {k: {"gops": p.gops, "shape": list(p.shape), "per_shape": p.per_shape, "engine": p.engine}
                       for k, p in peaks.items()}
    for row in result["rows"]:
        if "matmul_gops" in row:
            _set_efficiency(row, row["matmul_gops"] * 1e9, peaks)
    result["kernel"] = _kernel_rows(settings, paths, peaks, say)
    _footprint(result, settings, paths, say)
    result["gpu"] = _gpu_rows(settings, paths, say)
    result["load_average_end"] = list(os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _peaks(settings: Settings, say: Callable[[str], None]) -> dict[str, gemm.Peak]:
    """fp32 and int8 GEMM peaks through ONNX Runtime, and the int8 peak through OpenVINO where it imports.

    ``"int8"`` is the host's int8 peak: the faster of the two engines' bare int8 GEMMs.
    """
    say(f"GEMM peak on {settings.threads} threads (bare MatMul / MatMulInteger through ONNX Runtime, "
        "QDQ MatMul through OpenVINO)")
    peaks = {f"{kind}-onnxruntime": gemm.measure_peak(kind, threads=settings.threads, seconds=settings.peak_seconds)
             for kind in ("fp32", "int8")}
    from distilrt.runtime.engines import openvino as ov_engine

    if ov_engine.available():
        peaks["int8-openvino"] = gemm.measure_openvino_int8_peak(threads=settings.threads,
                                                                 seconds=settings.peak_seconds)
    say("    " + ", ".join(f"{k} {p.gops:.1f} GOP/s" for k, p in peaks.items()))
    peaks["fp32"] = peaks["fp32-onnxruntime"]
    peaks["int8"] = max((p for k, p in peaks.items() if k.startswith("int8-")), key=lambda p: p.gops)
    return peaks


def _ensure_tuned(bundle: Path, settings: Settings, say: Callable[[str], None], *,
                  random_weights: bool = False) -> dict[str, Any]:
    """This host's tuned choice for ``bundle``; runs ``distilrt tune`` first when the profile has no entry.

    A stand-in with seeded random weights (``random_weights``) is tuned with its int8 variants kept even
    though their agreement recorded at export missed the target: on near-flat random logits that figure
    is noise, and the rows compare speed on shapes (the agreement is still in the result).
    """
    from distilrt.runtime import load_bundle
    from distilrt.runtime.profile import lookup
    from distilrt.runtime.tune import tune

    manifest = load_bundle(bundle).manifest
    entry, why = lookup(manifest)
    ran = None
    if entry is None:
        say(f"tuning {manifest.name} for the tuned row (distilrt tune, budget {settings.tune_budget_s:.0f} s): {why}")
        started = time.perf_counter()
        done = tune(bundle, budget_s=settings.tune_budget_s, ignore_recorded_agreement=random_weights)
        ran = {"seconds": round(time.perf_counter() - started, 1), "repeats": done.repeats,
               "ignore_recorded_agreement": random_weights, "fidelity": done.fidelity,
               "workloads": done.workloads, "skipped": done.skipped}
        entry, why = lookup(manifest)
    found = {"latency": entry.latency.label if entry else None,
             "bulk": entry.bulk.label if entry and entry.bulk else None, "why": why, "tuned_now": ran}
    say(f"    tuned choice: single calls {found['latency']}, bulk {found['bulk']}")
    return found


def best_peaks(first: dict[str, gemm.Peak], second: dict[str, gemm.Peak]) -> dict[str, gemm.Peak]:
    """Per key, the higher of two measurements of the same peaks (the host's "int8" re-chosen among engines)."""
    best = {k: max((p for p in (first.get(k), second.get(k)) if p is not None), key=lambda p: p.gops)
            for k in {*first, *second} if k not in ("fp32", "int8")}
    best["fp32"] = best["fp32-onnxruntime"]
    best["int8"] = max((p for k, p in best.items() if k.startswith("int8-")), key=lambda p: p.gops)
    return best


def _add_efficiency(row: dict[str, Any], config: dict[str, Any], work: Workload, model: BenchModel,
                    peaks: dict[str, gemm.Peak]) -> None:
    """Matmul work per second against the host's measured GEMM peak of the row's arithmetic (int8 rows against
    the best bare int8 GEMM of any engine here, fp32 rows against the fp32 one; other precisions get none)."""
    batch, seq = work.shape  # type: ignore[misc]
    ops = gemm.matmul_ops(config, batch=batch, seq=seq, task=model.task)
    row["matmul_gops"] = round(ops / 1e9, 3)
    _set_efficiency(row, ops, peaks)


def _set_efficiency(row: dict[str, Any], ops: float, peaks: dict[str, gemm.Peak]) -> None:
    kind = "int8" if row["precision"].startswith("int8") else "fp32" if row["precision"] == "fp32" else None
    if kind is None:
        return
    row["efficiency"] = round(gemm.efficiency(ops, row["latency_ms"]["p50"] / 1000, peaks[kind].gops), 4)
    row["efficiency_peak"] = f"{kind} ({peaks[kind].engine})"


def _kernel_rows(settings: Settings, paths: dict[str, dict[str, Path]], peaks: dict[str, gemm.Peak],
                 say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Session-only latency and efficiency of each engine's model alone (no tokenizer, no post-processing):
    distilrt's and optimum's ONNX files in ONNX Runtime, and the peers' OpenVINO and PyTorch bf16 models."""
    from .kernel import session_timers

    rows = []
    key = "distilbert-qa"
    if key not in paths:
        return rows
    config = json.loads((paths[key]["checkpoint"] / "config.json").read_text())
    shapes = ((1, 128),) if settings.quick else ((1, 128), (1, 384), (8, 128))
    for (source, precision), timer in session_timers(paths[key], settings.systems, threads=settings.threads,
                                                     say=say).items():
        # bf16 rows have no measured bf16 peak to be held against: they get none.
        peak = precision if precision in ("int8", "fp32") else None
        for batch, seq in shapes:
            latency = timer(batch=batch, seq=seq, seconds=settings.latency_seconds / 2, min_runs=settings.min_runs)
            ops = gemm.matmul_ops(config, batch=batch, seq=seq, task="question-answering")
            row = {"model": key, "source": source, "precision": precision, "batch": batch, "seq": seq,
                   "latency_ms": latency.to_dict(), "matmul_gops": round(ops / 1e9, 3)}
            if peak:
                row.update(efficiency=round(gemm.efficiency(ops, latency.p50 / 1000, peaks[peak].gops), 4),
                           efficiency_peak=f"{peak} ({peaks[peak].engine})")
            rows.append(row)
            say(f"  session {source} {precision} {batch}x{seq}: p50 {latency.p50:.2f} ms"
                + (f", {row['efficiency']:.0%} of the {peak} peak" if peak else ""))
    return rows


def _footprint(result: dict[str, Any], settings: Settings, paths: dict[str, dict[str, Path]],
               say: Callable[[str], None]) -> None:
    from . import footprint

    key = "distilbert-qa"
    found: dict[str, Any] = {"installed": footprint.installed_sizes()}
    if key in paths:
        found["bundle_bytes"] = footprint.bundle_sizes(bundle=paths[key]["bundle"], optimum_dir=paths[key]["optimum"],
                                                       checkpoint=paths[key]["checkpoint"])
        if "distilrt-int8" in settings.systems and not any("distilrt-int8" in s["systems"] for s in result["skipped"]):
            say("cold start: new process until the first answer (distilrt int8 vs transformers fp32)")
            found["cold_start"] = footprint.cold_start(checkpoint=paths[key]["checkpoint"], bundle=paths[key]["bundle"],
                                                       precision="int8", repeats=settings.coldstart_repeats)
            for name, figures in found["cold_start"].items():
                if name == "skipped":
                    say(f"    cold start skipped: {figures}")
                    continue
                say(f"    {name}: {figures['process_s']:.2f} s to first answer, import {figures['import_s']:.2f} s, "
                    f"peak RSS {figures['rss_mb']:.0f} MB")
        if any(s in settings.systems for s in ("distilrt-ov-int8", "distilrt-auto")):
            from . import coldstart_engines

            say("cold start per engine: new process until the first answer (ONNX Runtime, OpenVINO, tuned)")
            try:
                found["cold_start_engines"] = coldstart_engines.measure(paths[key]["bundle"],
                                                                        repeats=settings.coldstart_repeats, say=say)
            except (RuntimeError, OSError) as exc:
                found["cold_start_engines"] = {"skipped": f"cold-start child failed: {str(exc)[-400:]}"}
            say("    " + coldstart_engines.table(found["cold_start_engines"]).replace("\n", "\n    "))
    result["footprint"] = found


def _gpu_rows(settings: Settings, paths: dict[str, dict[str, Path]], say: Callable[[str], None]) -> dict[str, Any]:
    """GPU rows of the QA model at its four latency workloads (also in quick mode: they are the GPU comparison).

    Runs last, and whatever goes wrong here is recorded as the reason: the CPU figures above are kept.
    """
    from .gpu import GPU_SYSTEMS, gpu_rows

    key = "distilbert-qa"
    loads = [w for w in workloads_for(MODELS[key], quick=False) if w.kind == "latency"]
    try:
        return gpu_rows(paths.get(key), loads, work_dir=settings.work_dir, seconds=settings.latency_seconds,
                        min_runs=settings.min_runs, say=say)
    except Exception as exc:
        reason = f"the GPU runner failed: {type(exc).__name__}: {exc}"
        say(f"GPU rows skipped: {reason}")
        return {"measured": False, "systems": list(GPU_SYSTEMS), "reason": reason, "device": None, "rows": [],
                "skipped": [{"system": s, "reason": reason} for s in GPU_SYSTEMS], "builds": {}}
