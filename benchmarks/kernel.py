"""Session-only timing: each engine's model alone, with no tokenizer or post-processing around it."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .timing import Latency, time_calls

_FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_quantized.onnx"}


def model_file(source: str, paths: dict[str, Path], precision: str) -> Path:
    """The ONNX file of ``precision`` in the distilrt bundle (``source="distilrt"``: the graph its runtime
    runs on the CPU, see ``Manifest.preferred_graph``) or optimum's export."""
    if source == "distilrt":
        from distilrt.runtime.manifest import Manifest

        manifest = Manifest.read(paths["bundle"], sealed=False)  # a file name is all this needs
        return paths["bundle"] / manifest.variant(manifest.preferred_graph(precision)).file
    return paths["optimum"] / _FILES[precision]


def random_feeds(session, *, batch: int, seq: int, vocab: int = 30000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "input_ids":
            feeds[spec.name] = rng.integers(1000, vocab, (batch, seq), dtype=np.int64)
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones((batch, seq), dtype=np.int64)
        else:
            feeds[spec.name] = np.zeros((batch, seq), dtype=np.int64)
    return feeds


def session_for(source: str, paths: dict[str, Path], precision: str, *, threads: int):
    """The session ``source``'s own runtime would build for ``precision`` on CPU with ``threads``.

    distilrt graphs get the session distilrt's runtime builds on CPU (its left-out rewrites); optimum's
    get ONNX Runtime's defaults, as ``ORTModel`` builds them.
    """
    from distilrt.runtime.engines.onnxruntime import SessionSettings, create_session

    settings = SessionSettings(threads=threads, disabled_optimizers=None if source == "distilrt" else ())
    return create_session(model_file(source, paths, precision), settings)


def session_latency(source: str, paths: dict[str, Path], precision: str, *, batch: int, seq: int, threads: int,
                    seconds: float, min_runs: int) -> Latency:
    """p50/p95/p99 of ``session.run`` on ``batch x seq`` random token ids with ``threads`` (see :func:`session_for`)."""
    session = session_for(source, paths, precision, threads=threads)
    feeds = random_feeds(session, batch=batch, seq=seq)
    return time_calls(lambda: session.run(None, feeds), seconds=seconds, min_runs=min_runs)


Timer = Callable[..., Latency]


def session_timers(paths: dict[str, Path], systems: Sequence[str], *, threads: int,
                   say: Callable[[str], None] = print) -> dict[tuple[str, str], Timer]:
    """(source, precision) -> ``timer(batch=, seq=, seconds=, min_runs=)`` for every model-only row the run
    can measure: distilrt's and optimum's fp32 and int8 files in ONNX Runtime, plus the OpenVINO and
    PyTorch bf16 peers when ``systems`` includes them, and the bundle's static int8 file on distilrt's
    OpenVINO engine with a distilrt OpenVINO or tuned row (OpenVINO rows only where it imports)."""
    timers: dict[tuple[str, str], Timer] = {}
    for source in ("distilrt", "optimum"):
        for precision in ("fp32", "int8"):
            timers[(source, precision)] = partial(_ort_latency, source, paths, precision, threads=threads)
    wanted = [s for s in systems if s.startswith("openvino-")]
    if wanted:
        from . import openvino
        from .models import MODELS
        from .systems import SYSTEMS, openvino_file

        reason = openvino.unavailable()
        if reason:
            say(f"  session-only OpenVINO rows skipped: {reason}")
        else:
            default = openvino.default_precision()
            for system in wanted:
                spec = SYSTEMS[system]
                file = openvino_file(spec, MODELS["distilbert-qa"], paths["optimum"])
                label = "int8" if spec.precision == "int8" else f"default ({default})"
                timers[("openvino", label)] = partial(_openvino_latency, file, threads=threads)
    if any(s.startswith("distilrt-ov-") or s == "distilrt-auto" for s in systems):
        from distilrt.runtime.engines import openvino as ov_engine

        if ov_engine.available():
            timers[("distilrt-openvino", "int8")] = partial(_distilrt_openvino_latency, paths["bundle"], threads=threads)
    if "torch-bf16" in systems:
        timers[("pytorch", "bf16")] = partial(_torch_latency, paths["checkpoint"], threads=threads)
    return timers


def _ort_latency(source: str, paths: dict[str, Path], precision: str, *, threads: int, batch: int, seq: int,
                 seconds: float, min_runs: int) -> Latency:
    return session_latency(source, paths, precision, batch=batch, seq=seq, threads=threads, seconds=seconds,
                           min_runs=min_runs)


def _openvino_latency(model: Path, *, threads: int, batch: int, seq: int, seconds: float, min_runs: int) -> Latency:
    from . import openvino

    compiled = openvino.compile_model(model, threads=threads)
    request = compiled.create_infer_request()
    feeds = _random_ids([port.get_any_name() for port in compiled.inputs], batch=batch, seq=seq)
    openvino.infer(compiled, feeds, request)  # first call compiles the shape's kernels
    return time_calls(lambda: openvino.infer(compiled, feeds, request), seconds=seconds, min_runs=min_runs)


def _distilrt_openvino_latency(bundle: Path, *, threads: int, batch: int, seq: int, seconds: float,
                               min_runs: int) -> Latency:
    """The bundle's static int8 (QDQ) file on distilrt's OpenVINO engine, as the runtime compiles it."""
    from distilrt.runtime import load_bundle
    from distilrt.runtime.engines.openvino import STATIC_INT8, OpenVinoEngine

    loaded = load_bundle(bundle)
    engine = OpenVinoEngine(loaded.path, loaded.manifest, STATIC_INT8, threads=threads)
    feeds = _random_ids(engine.input_names, batch=batch, seq=seq)
    engine.run(feeds)  # first call compiles the shape's kernels
    return time_calls(lambda: engine.run(feeds), seconds=seconds, min_runs=min_runs)


def _torch_latency(checkpoint: Path, *, threads: int, batch: int, seq: int, seconds: float, min_runs: int) -> Latency:
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.set_num_threads(threads)
    net = AutoModelForQuestionAnswering.from_pretrained(str(checkpoint), torch_dtype=torch.bfloat16).eval()
    names = [n for n in ("input_ids", "attention_mask") if n in net.forward.__code__.co_varnames]
    feeds = {k: torch.from_numpy(v) for k, v in _random_ids(names, batch=batch, seq=seq).items()}

    def call() -> None:
        with torch.inference_mode():
            net(**feeds)

    return time_calls(call, seconds=seconds, min_runs=min_runs)


def _random_ids(names: Sequence[str], *, batch: int, seq: int, vocab: int = 30000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: (rng.integers(1000, vocab, (batch, seq), dtype=np.int64) if name == "input_ids"
                   else np.ones((batch, seq), dtype=np.int64) if name == "attention_mask"
                   else np.zeros((batch, seq), dtype=np.int64)) for name in names}
