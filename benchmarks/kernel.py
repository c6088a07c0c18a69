"""Session-only timing: the ONNX graph alone, with no tokenizer or post-processing around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .timing import Latency, time_calls

_FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_quantized.onnx"}


def model_file(source: str, paths: dict[str, Path], precision: str) -> Path:
    """The ONNX file of ``precision`` in the distilrt bundle (``source="distilrt"``) or optimum's export."""
    if source == "distilrt":
        return paths["bundle"] / "onnx" / _FILES[precision]
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
