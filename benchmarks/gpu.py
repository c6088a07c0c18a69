"""GPU rows of the comparison: the question-answering model on CUDA and TensorRT, end to end.

Four systems, at the QA latency workloads (b1x32, b1x128, b1x384, b8x128), timed like the CPU rows:

- ``torch-cuda-fp16``: the ``transformers`` QA pipeline on ``device=0`` in float16;
- ``ort-cuda-fp16-iobinding``: the bundle's fp16 graph on ``CUDAExecutionProvider``;
- ``tensorrt-fp16`` / ``tensorrt-int8``: an unfused fp32 graph (the bundle's, or optimum's export of the
  same checkpoint when the bundle's is fused) on ``TensorrtExecutionProvider`` with CUDA as fallback,
  which builds its own fp16 / calibrated int8 engine; the engine build is timed and reported apart.

The ONNX Runtime rows run distilrt's tokenizer and QA post-processing around a session whose inputs
and outputs are bound on the GPU (:class:`BoundSession`), so the three differ only in provider and
graph, and all four include tokenization and post-processing, like every CPU row.  A system that
cannot run is recorded as skipped with its own reason; one that fails never stops the others.

Everything that needs no GPU (provider options, profile strings, skip decisions, the IO-binding
session, INT8 calibration) is a plain function, tested on the CPU.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .tensorrt import (CALIBRATION_TABLE, CUDA, TENSORRT, engine_files, prepare_cache_dir, profile_shapes, qa_feeds,
                       tensorrt_graph, tensorrt_provider_options, tensorrt_providers, write_calibration)
from .timing import time_calls
from .workloads import QAPair

logger = logging.getLogger(__name__)

QA_MODEL = "distilbert-qa"
_ORT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


@dataclass(frozen=True)
class GpuSystem:
    key: str
    label: str
    family: str
    precision: str
    provider: str | None  # the ORT provider the session must run on; None for the PyTorch row


GPU_SPECS: dict[str, GpuSystem] = {spec.key: spec for spec in (
    GpuSystem("torch-cuda-fp16", "transformers pipeline, PyTorch CUDA fp16", "transformers", "fp16", None),
    GpuSystem("ort-cuda-fp16-iobinding", "ORT CUDA, bundle fp16 graph, IO binding, end to end", "onnxruntime",
              "fp16", CUDA),
    GpuSystem("tensorrt-fp16", "ORT TensorRT fp16 engine, IO binding, end to end", "tensorrt", "fp16", TENSORRT),
    GpuSystem("tensorrt-int8", "ORT TensorRT int8 engine (calibrated, fp16 fallback), IO binding, end to end",
              "tensorrt", "int8", TENSORRT),
)}
GPU_SYSTEMS: tuple[str, ...] = tuple(GPU_SPECS)


class GpuSkip(Exception):
    """A system cannot run for a known reason; the message is recorded as that reason verbatim."""


# -- sessions -------------------------------------------------------------------------------------

def check_primary(expected: str, loaded: Sequence[str]) -> None:
    """Refuse a session that silently fell back from ``expected`` to another provider."""
    if not loaded or loaded[0] != expected:
        raise RuntimeError(f"the session runs on {', '.join(loaded) or 'nothing'}, not {expected}: onnxruntime fell "
                           "back (a missing CUDA, cuDNN or TensorRT library is the usual cause)")


class BoundSession:
    """An ORT session run through IO binding on ``device``, offering what distilrt's tasks call on a session.

    Inputs are copied to the device for every call and outputs bound there, then copied back: the
    transfers a real request pays are inside the timing.
    """

    def __init__(self, session: Any, *, device: str = "cuda", device_id: int = 0, precision: str = "fp16") -> None:
        self.session = session
        self.device = device
        self.device_id = device_id
        self.precision = precision
        inputs = session.get_inputs()
        self.input_names: list[str] = [i.name for i in inputs]
        self.input_dtypes = {i.name: _ORT_TYPES.get(i.type, np.int64) for i in inputs}
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        self.providers: list[str] = list(session.get_providers())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output as a float32 numpy array, keyed by name."""
        import onnxruntime as ort

        if set(feeds) != set(self.input_names):
            raise ValueError(f"the graph takes the inputs {self.input_names}, got feeds for {sorted(feeds)}")
        binding = self.session.io_binding()
        held = []  # a CPU OrtValue borrows its array's memory: both must live until the run is over
        for name in self.input_names:
            array = np.ascontiguousarray(feeds[name], dtype=self.input_dtypes[name])
            value = ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)
            held.append((array, value))
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        values = binding.copy_outputs_to_cpu()
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, values)}


def load_ort_qa(bundle_dir: Path, model_file: Path, *, providers: Sequence[tuple[str, dict[str, Any]]],
                device: str, device_id: int = 0, precision: str, batch_size: int = 1,
                threads: int | None = None) -> Any:
    """distilrt's QA task (its tokenizer and post-processing) over ``model_file`` in a :class:`BoundSession`."""
    import onnxruntime as ort

    from distilrt.runtime import load_bundle
    from distilrt.runtime.pipeline import task_class
    from distilrt.runtime.tokenizer import TextTokenizer

    from distilrt.runtime.engines.onnxruntime import SessionSettings, session_options

    options = session_options(SessionSettings(threads=threads))
    session = ort.InferenceSession(str(model_file), options, providers=[name for name, _ in providers],
                                   provider_options=[dict(opts) for _, opts in providers])
    check_primary(providers[0][0], session.get_providers())
    bound = BoundSession(session, device=device, device_id=device_id, precision=precision)
    bundle = load_bundle(bundle_dir)
    tokenizer = TextTokenizer.from_bundle(bundle.path, max_length=bundle.manifest.max_sequence_length,
                                          model_vocab_size=bundle.vocab_size)
    return task_class("question-answering")(bundle=bundle, session=bound, tokenizer=tokenizer, batch_size=batch_size)


# -- what can run here ----------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuProbe:
    """What this machine offers: ORT's providers, and the CUDA device torch sees (when torch is installed)."""

    providers: tuple[str, ...]
    device: str | None  # CUDA device 0's name; None when there is none, or torch cannot tell
    cuda_reason: str | None  # why ``device`` is None
    torch_installed: bool
    ort_error: str | None = None  # why onnxruntime could not be asked


_ASK = object()


def probe_gpu(*, providers: Sequence[str] | None = None, cuda: Any = _ASK) -> GpuProbe:
    """Ask onnxruntime and ``torch.cuda`` (or the given stand-ins; ``cuda=None``: torch is not installed)."""
    ort_error = None
    if providers is None:
        try:
            import onnxruntime as ort

            providers = list(ort.get_available_providers())
        except ImportError as exc:
            providers, ort_error = [], f"onnxruntime is not importable ({exc})"
    if cuda is _ASK:
        try:
            import torch

            cuda = torch.cuda
        except ImportError:
            cuda = None
    if cuda is None:
        return GpuProbe(tuple(providers), None, "torch is not installed", False, ort_error)
    try:
        if not cuda.is_available():
            return GpuProbe(tuple(providers), None, "torch.cuda.is_available() is False (no CUDA device or driver "
                            "here, or a CPU-only torch build)", True, ort_error)
        return GpuProbe(tuple(providers), str(cuda.get_device_name(0)), None, True, ort_error)
    except Exception as exc:  # a broken driver raises from inside torch
        return GpuProbe(tuple(providers), None, f"torch.cuda failed: {_brief(exc)}", True, ort_error)


def skip_reasons(probe: GpuProbe, *, have_model: bool = True) -> dict[str, str | None]:
    """Per GPU system: None when it can be tried, else every reason it cannot, most basic first.

    Without torch nothing tells whether a device exists; the ORT rows are then tried, and a session
    that falls back to the CPU is caught when it is built (:func:`check_primary`).
    """
    have = ", ".join(probe.providers) or "none"
    reasons: dict[str, str | None] = {}
    for key, spec in GPU_SPECS.items():
        problems = []
        if not have_model:
            problems.append(f"the {QA_MODEL} model is not part of this run (add it with --models {QA_MODEL})")
        if spec.provider is None and not probe.torch_installed:
            problems.append("torch is not installed (the transformers pipeline runs on it)")
        elif probe.device is None and probe.torch_installed:
            problems.append(f"no CUDA device: {probe.cuda_reason}")
        if spec.provider is not None:
            if probe.ort_error:
                problems.append(probe.ort_error)
            elif CUDA not in probe.providers:
                problems.append(f"onnxruntime has no {CUDA} (available: {have}); it is the CPU build: "
                                "install onnxruntime-gpu (pip install 'distilrt[gpu]')")
            if spec.provider == TENSORRT and not probe.ort_error and TENSORRT not in probe.providers:
                problems.append(f"onnxruntime has no {TENSORRT} (available: {have}); it needs an onnxruntime-gpu "
                                "with TensorRT and the TensorRT libraries")
        reasons[key] = "; ".join(dict.fromkeys(problems)) or None
    return reasons


# -- loaders --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuJob:
    """Everything a loader needs: the QA model's artefacts, the workloads' shapes and inputs."""

    checkpoint: Path
    bundle: Path
    work_dir: Path
    plain_onnx: Path | None  # an unfused export of the same checkpoint, for TensorRT
    shapes: tuple[tuple[int, int], ...]
    calibration: tuple[tuple[QAPair, ...], ...]  # one batch per workload, for int8 calibration
    device_id: int = 0


@dataclass
class Loaded:
    run: Callable[[list[QAPair], int], list[Any]]
    close: Callable[[], None] = lambda: None
    build: dict[str, Any] = field(default_factory=dict)  # figures of the load, reported with the rows


Loader = Callable[[GpuSystem, GpuJob], Loaded]


def _task_runner(task: Any) -> Loaded:
    """A distilrt task as a runner; ``close`` drops it so its GPU memory is freed before the next system."""
    held = {"task": task}

    def run(pairs: list[QAPair], batch_size: int) -> list[Any]:
        qa = held["task"]
        qa.batch_size = batch_size
        out = qa(question=[p.question for p in pairs], context=[p.context for p in pairs])
        return out if isinstance(out, list) else [out]

    def close() -> None:
        held.clear()
        gc.collect()

    return Loaded(run, close)


def _load_torch(spec: GpuSystem, job: GpuJob) -> Loaded:
    """The transformers QA pipeline on CUDA in float16, as a user would run it on a GPU."""
    import inspect

    import torch
    import transformers

    # Recent transformers call it ``dtype`` (``torch_dtype`` still works there, with a deprecation warning);
    # older releases know only ``torch_dtype``.
    name = "dtype" if "dtype" in inspect.signature(transformers.pipeline).parameters else "torch_dtype"
    pipe = transformers.pipeline("question-answering", model=str(job.checkpoint), tokenizer=str(job.checkpoint),
                                 device=job.device_id, **{name: torch.float16})
    held = {"pipe": pipe}

    def run(pairs: list[QAPair], batch_size: int) -> list[Any]:
        with torch.inference_mode():
            out = held["pipe"](question=[p.question for p in pairs], context=[p.context for p in pairs],
                               batch_size=batch_size)
        return out if isinstance(out, list) else [out]

    def close() -> None:
        held.clear()
        gc.collect()
        torch.cuda.empty_cache()

    return Loaded(run, close, {"device": torch.cuda.get_device_name(job.device_id)})


def _load_ort_cuda(spec: GpuSystem, job: GpuJob) -> Loaded:
    from distilrt.runtime import load_bundle
    from distilrt.runtime.providers import cuda_options

    model = job.bundle / load_bundle(job.bundle).manifest.variant("fp16").file
    task = load_ort_qa(job.bundle, model, providers=[(CUDA, cuda_options(device_id=job.device_id))], device="cuda",
                       device_id=job.device_id, precision="fp16", batch_size=max(b for b, _ in job.shapes))
    loaded = _task_runner(task)
    loaded.build = {"model_file": model.name}
    return loaded


def _load_tensorrt(spec: GpuSystem, job: GpuJob) -> Loaded:
    """An fp32 graph: TensorRT makes its own fp16 / int8 engine, and the fp16 graph's casts would hinder it."""
    import onnxruntime as ort

    from distilrt.runtime import load_bundle

    manifest = load_bundle(job.bundle).manifest
    model, why = tensorrt_graph(job.bundle / manifest.variant("fp32").file, job.plain_onnx)
    stat = model.stat()
    root = job.work_dir / "trt-cache"
    cache = root / spec.precision  # one engine directory per precision: an engine is tied to its precision
    profile = profile_shapes(manifest.inputs, job.shapes)
    cleared = prepare_cache_dir(cache, f"{model} {stat.st_size} {stat.st_mtime_ns}\n{spec.precision}\n"
                                       f"{sorted(profile.items())}\n")
    table = None
    if spec.precision == "int8":
        table = cache / CALIBRATION_TABLE
        if not table.is_file():
            try:
                feeds = [qa_feeds(job.bundle / "tokenizer.json", group, manifest.inputs) for group in job.calibration]
                usable = [p for p in (CUDA, "CPUExecutionProvider") if p in ort.get_available_providers()]
                table = write_calibration(model, feeds, cache, providers=usable)
            except Exception as exc:
                raise GpuSkip(f"no INT8 calibration table could be produced ({_brief(exc)}); an uncalibrated "
                              "int8 engine is not measured") from exc
    options = tensorrt_provider_options(precision=spec.precision, input_names=manifest.inputs, shapes=job.shapes,
                                        cache_dir=cache, timing_cache_dir=root, calibration_table=table,
                                        device_id=job.device_id)
    reused = bool(engine_files(cache))
    task = load_ort_qa(job.bundle, model, providers=tensorrt_providers(options, device_id=job.device_id),
                       device="cuda", device_id=job.device_id, precision=spec.precision,
                       batch_size=max(b for b, _ in job.shapes))
    loaded = _task_runner(task)
    loaded.build = {"model_file": str(model), "graph": why, "engine_cache": "reused" if reused else "built",
                    "cache_dir": str(cache), "cache_cleared": cleared,
                    "calibration_table": str(table) if table else None, **profile}
    return loaded


LOADERS: dict[str, Loader] = {"torch-cuda-fp16": _load_torch, "ort-cuda-fp16-iobinding": _load_ort_cuda,
                              "tensorrt-fp16": _load_tensorrt, "tensorrt-int8": _load_tensorrt}


# -- measuring ------------------------------------------------------------------------------------

def _brief(exc: BaseException) -> str:
    """The exception's type and first line (ORT and TensorRT messages run to pages)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def _measure(spec: GpuSystem, job: GpuJob, loads: Sequence[Any], loader: Loader, found: dict[str, Any], *,
             seconds: float, min_runs: int, say: Callable[[str], None]) -> str | None:
    """Load and time one system into ``found``; the reason it was skipped, or None."""
    say(f"GPU {spec.key}: loading ({spec.label})")
    start = time.perf_counter()
    try:
        loaded = loader(spec, job)
    except GpuSkip as exc:
        return str(exc)
    except Exception as exc:
        logger.debug("loading %s failed", spec.key, exc_info=True)
        return f"could not be loaded: {_brief(exc)}"
    load_s = time.perf_counter() - start
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    current = ""
    try:
        for work in loads:
            current, size = work.key, work.batch_sizes[0]
            call = (lambda w=work, n=size: loaded.run(w.inputs, n))
            begin = time.perf_counter()
            call()  # the first call of each shape: allocations, kernel choice, and TensorRT's engine work
            first[work.key] = time.perf_counter() - begin
            latency = time_calls(call, seconds=seconds, min_runs=min_runs)
            rows.append({"workload": work.key, "kind": "latency", "items": len(work.inputs), "batch_size": size,
                         "latency_ms": latency.to_dict(),
                         "throughput": round(len(work.inputs) / (latency.p50 / 1000), 2),
                         "first_call_ms": round(first[work.key] * 1000, 3), "model": QA_MODEL, "system": spec.key,
                         "label": spec.label, "family": spec.family, "precision": spec.precision, "note": work.note})
            say(f"  GPU {spec.key} {work.key}: p50 {latency.p50:8.2f} ms  p95 {latency.p95:8.2f}  "
                f"p99 {latency.p99:8.2f}  ({latency.runs} runs)")
    except Exception as exc:
        logger.debug("measuring %s failed", spec.key, exc_info=True)
        return f"failed while measuring {current}: {_brief(exc)}"
    finally:
        try:
            loaded.close()
        except Exception as exc:  # releasing must not turn measured rows into a failure
            logger.warning("releasing %s failed: %s", spec.key, exc)
    found["rows"].extend(rows)
    build: dict[str, Any] = {"load_s": round(load_s, 3),
                             "first_call_s": {k: round(v, 3) for k, v in first.items()}, **loaded.build}
    if spec.provider == TENSORRT:
        # Session creation plus each shape's first call: with the engine cache empty, that is the build.
        build["engine_build_s"] = round(load_s + sum(first.values()), 3)
    found["builds"][spec.key] = build
    return None


def gpu_rows(paths: Mapping[str, Path] | None, loads: Sequence[Any], *, work_dir: Path, seconds: float,
             min_runs: int, say: Callable[[str], None] = print, probe: GpuProbe | None = None,
             loaders: Mapping[str, Loader] | None = None, device_id: int = 0) -> dict[str, Any]:
    """Measure every GPU system on the QA model's latency workloads (``runner.Workload`` objects).

    ``paths`` are the QA model's :func:`~distilrt.benchmarks.models.prepare` artefacts (None: not in
    this run).  Returns ``{"measured", "systems", "reason", "device", "rows", "skipped", "builds"}``;
    ``reason`` is set when no system was measured.
    """
    latency = [w for w in loads if w.kind == "latency" and w.shape]
    probe = probe or probe_gpu()
    reasons = skip_reasons(probe, have_model=paths is not None and bool(latency))
    chosen = {**LOADERS, **(loaders or {})}
    found: dict[str, Any] = {"measured": False, "systems": list(GPU_SYSTEMS), "reason": None,
                             "device": probe.device, "rows": [], "skipped": [], "builds": {}}
    job = None
    if paths is not None:
        plain = Path(paths["optimum"]) / "model.onnx" if paths.get("optimum") else None
        job = GpuJob(checkpoint=Path(paths["checkpoint"]), bundle=Path(paths["bundle"]), work_dir=Path(work_dir),
                     plain_onnx=plain,
                     shapes=tuple(w.shape for w in latency), calibration=tuple(tuple(w.inputs) for w in latency),
                     device_id=device_id)
    for spec in GPU_SPECS.values():
        reason = reasons[spec.key]
        if reason is None and job is not None:
            reason = _measure(spec, job, latency, chosen[spec.key], found, seconds=seconds, min_runs=min_runs, say=say)
        if reason is not None:
            found["skipped"].append({"system": spec.key, "label": spec.label, "reason": reason})
            say(f"GPU {spec.key} skipped: {reason}")
    found["measured"] = bool(found["rows"])
    if not found["measured"]:
        distinct = list(dict.fromkeys(s["reason"] for s in found["skipped"]))
        found["reason"] = distinct[0] if len(distinct) == 1 else "no GPU system could run; each one's reason is listed"
    return found
