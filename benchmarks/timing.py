"""Timing loops and summary statistics."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Per-call wall time of a repeated call, in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def summarize(samples_s: list[float]) -> Latency:
    ms = np.asarray(samples_s) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return Latency(float(p50), float(p95), float(p99), float(ms.mean()), len(ms))


def time_calls(call: Callable[[], Any], *, seconds: float, min_runs: int, max_runs: int = 10_000,
               warmup: int = 2) -> Latency:
    """Call ``call`` repeatedly for about ``seconds`` (at least ``min_runs`` times) after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return summarize(samples)


def time_pass(call: Callable[[], Any], *, repeats: int, warmup: bool = True) -> float:
    """Median wall time in seconds of ``repeats`` full passes (after one untimed pass if ``warmup``)."""
    if warmup:
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))
