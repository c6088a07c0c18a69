"""GPU rows of the comparison: the question-answering model on CUDA and TensorRT, end to end.

Four systems, at the QA latency workloads (b1x32, b1x128, b1x384, b8x128), timed like the CPU rows:

- ``torch-cuda-fp16``: the ``transformers`` QA pipeline on ``device=0`` in float16;
- ``ort-cuda-fp16-iobinding``: ``distilrt.runtime.pipeline(provider="cuda", precision="fp16")``;
- ``tensorrt-fp16`` / ``tensorrt-int8``: ``pipeline(provider="tensorrt")`` at fp16 / int8.  What TensorRT
  is given (a standard-operator fp16 graph, the static QDQ int8 graph), its options, profile and engine
  cache are the runtime's (:mod:`distilrt.runtime.tensorrt`): the rows measure what users run.  The
  engine build is timed and reported apart.

Every ORT row runs with IO binding, and its answers are compared with the CPU fp32 pipeline's on the
same inputs (top-1 span agreement, reported with the build figures): a fast row that answers
differently is not a result.  A system that cannot run is recorded as skipped with its own reason; one
that fails never stops the others.

Everything that needs no GPU (skip decisions, the runner's isolation, agreement) is a plain function,
tested on the CPU.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from distilrt.runtime.providers import GPU_INSTALL

from .timing import time_calls
from .workloads import QAPair

logger = logging.getLogger(__name__)

QA_MODEL = "distilbert-qa"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


@dataclass(frozen=True)
class GpuSystem:
    key: str
    label: str
    family: str
    precision: str
    provider: str | None  # the ORT provider the session must run on; None for the PyTorch row


GPU_SPECS: dict[str, GpuSystem] = {spec.key: spec for spec in (
    GpuSystem("torch-cuda-fp16", "transformers pipeline, PyTorch CUDA fp16", "transformers", "fp16", None),
    GpuSystem("ort-cuda-fp16-iobinding", "distilrt ORT CUDA fp16, IO binding, end to end", "onnxruntime",
              "fp16", CUDA),
    GpuSystem("tensorrt-fp16", "distilrt ORT TensorRT fp16 engine, IO binding, end to end", "tensorrt", "fp16",
              TENSORRT),
    GpuSystem("tensorrt-int8", "distilrt ORT TensorRT int8 engine (static QDQ graph), IO binding, end to end",
              "tensorrt", "int8", TENSORRT),
)}
GPU_SYSTEMS: tuple[str, ...] = tuple(GPU_SPECS)


class GpuSkip(Exception):
    """A system cannot run for a known reason; the message is recorded as that reason verbatim."""


# -- sessions ------------------------------------------------------------------------------------

def check_primary(expected: str, loaded: Sequence[str]) -> None:
    """Refuse a session that silently fell back from ``expected`` to another provider."""
    if not loaded or loaded[0] != expected:
        raise RuntimeError(f"the session runs on {', '.join(loaded) or 'nothing'}, not {expected}: onnxruntime fell "
                           "back (a missing CUDA, cuDNN or TensorRT library is the usual cause)")


def engine_files(root: Path) -> set[Path]:
    """Every TensorRT engine file under ``root`` (the runtime keeps one folder per graph, precision, profile)."""
    return set(Path(root).rglob("*.engine")) if Path(root).is_dir() else set()


def agreement(got: Sequence[dict[str, Any]], want: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Top-1 span agreement of QA answers with the reference's (same start and end), and how many were compared."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} answers to compare with {len(want)} reference answers")
    same = sum(1 for a, b in zip(got, want) if (a.get("start"), a.get("end")) == (b.get("start"), b.get("end")))
    return {"top1_agreement": round(same / len(want), 4) if want else None, "compared": len(want)}


def reference_answers(bundle: Path, pairs: Sequence[QAPair]) -> list[dict[str, Any]]:
    """The CPU fp32 pipeline's answers: what every GPU row is held against."""
    from distilrt.runtime import pipeline

    qa = pipeline("question-answering", model=bundle, precision="fp32", provider="cpu")
    out = qa(question=[p.question for p in pairs], context=[p.context for p in pairs])
    return out if isinstance(out, list) else [out]


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
                problems.append(f"onnxruntime has no {CUDA} (available: {have}); it is the CPU build: {GPU_INSTALL}")
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
    shapes: tuple[tuple[int, int], ...]
    pairs: tuple[QAPair, ...]  # every workload's inputs: the answers compared with the CPU fp32 reference
    device_id: int = 0
    reference: tuple[dict[str, Any], ...] | None = None  # the CPU fp32 answers to ``pairs``

    @property
    def engine_root(self) -> Path:
        return self.work_dir / "trt-cache"


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


def _load_runtime(spec: GpuSystem, job: GpuJob) -> Loaded:
    """distilrt's own pipeline on CUDA or TensorRT, IO binding on: the graph, options and engine cache it picks."""
    from distilrt.runtime import pipeline
    from distilrt.runtime.errors import GraphUnsupportedError

    provider = "tensorrt" if spec.provider == TENSORRT else "cuda"
    before = engine_files(job.engine_root)
    try:
        task = pipeline("question-answering", model=job.bundle, provider=provider, precision=spec.precision,
                        batch_size=max(b for b, _ in job.shapes), io_binding=True, device_id=job.device_id,
                        tensorrt_cache_dir=job.engine_root)
    except GraphUnsupportedError as exc:  # e.g. a bundle without the static QDQ int8 graph
        raise GpuSkip(str(exc)) from exc
    check_primary(spec.provider, task.session.providers)
    loaded = _task_runner(task)
    loaded.build = {"model_file": task.session.path.name, "providers": list(task.session.providers)}
    if provider == "tensorrt":
        options = task.session.plan.options[0]
        loaded.build.update({"cache_dir": options["trt_engine_cache_path"], "engines_before": len(before),
                             **{k: v for k, v in options.items() if k.startswith("trt_profile_")}})
    return loaded


LOADERS: dict[str, Loader] = {"torch-cuda-fp16": _load_torch, "ort-cuda-fp16-iobinding": _load_runtime,
                              "tensorrt-fp16": _load_runtime, "tensorrt-int8": _load_runtime}


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
    agreed: dict[str, Any] | None = None
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
        if job.reference:
            current = "the agreement check"
            answers = loaded.run(list(job.pairs), max(b for b, _ in job.shapes))
            agreed = agreement(answers, job.reference)
            say(f"  GPU {spec.key}: top-1 agreement with CPU fp32 {agreed['top1_agreement']:.1%} of {agreed['compared']}")
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
    if agreed is not None:
        build["agreement_vs_cpu_fp32"] = agreed
    if spec.provider == TENSORRT:
        # Session creation plus each shape's first call: with the engine cache empty, that is the build.
        build["engine_build_s"] = round(load_s + sum(first.values()), 3)
        if "engines_before" in build:
            build["engine_cache"] = "built" if len(engine_files(job.engine_root)) > build.pop("engines_before") \
                else "reused"
    found["builds"][spec.key] = build
    return None


def gpu_rows(paths: Mapping[str, Path] | None, loads: Sequence[Any], *, work_dir: Path, seconds: float,
             min_runs: int, say: Callable[[str], None] = print, probe: GpuProbe | None = None,
             loaders: Mapping[str, Loader] | None = None, device_id: int = 0,
             reference: Callable[[Path, Sequence[QAPair]], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Measure every GPU system on the QA model's latency workloads (``runner.Workload`` objects).

    ``paths`` are the QA model's :func:`~distilrt.benchmarks.models.prepare` artefacts (None: not in
    this run).  Returns ``{"measured", "systems", "reason", "device", "rows", "skipped", "builds"}``;
    ``reason`` is set when no system was measured.  ``reference`` (default :func:`reference_answers`)
    gives the CPU fp32 answers each system's answers are compared with.
    """
    latency = [w for w in loads if w.kind == "latency" and w.shape]
    probe = probe or probe_gpu()
    reasons = skip_reasons(probe, have_model=paths is not None and bool(latency))
    chosen = {**LOADERS, **(loaders or {})}
    found: dict[str, Any] = {"measured": False, "systems": list(GPU_SYSTEMS), "reason": None,
                             "device": probe.device, "rows": [], "skipped": [], "builds": {}}
    job = None
    if paths is not None:
        pairs = tuple(dict.fromkeys(p for w in latency for p in w.inputs))
        job = GpuJob(checkpoint=Path(paths["checkpoint"]), bundle=Path(paths["bundle"]), work_dir=Path(work_dir),
                     shapes=tuple(w.shape for w in latency), pairs=pairs, device_id=device_id)
        if any(reason is None for reason in reasons.values()):
            try:
                job = replace(job, reference=tuple((reference or reference_answers)(job.bundle, pairs)))
            except Exception as exc:  # the rows are still timed; their agreement is then not reported
                found["reference_error"] = _brief(exc)
                say(f"GPU rows: no CPU fp32 reference answers ({found['reference_error']}); agreement not checked")
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
