"""Prometheus metrics for the HTTP service, written in the text exposition format (version 0.0.4).

A small self-contained registry: counters, gauges and histograms with labels.  Updates come from the
event loop and from the model worker threads, so every family guards its samples with one lock.
"""

from __future__ import annotations

import math
import threading
from typing import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: request latency buckets, seconds (1 ms .. 30 s)
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: batch-size buckets (inputs or requests per model call)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"metric {self.name} takes labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError


class Counter(_Family):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_format_value(v)}" for k, v in items]


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def add(self, amount: float, **labels: str) -> None:
        self.inc(amount, **labels)


class Histogram(_Family):
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (), *,
                 buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(float(b) for b in buckets))
        # per label set: [count per finite bucket..., sum, total count]
        self._values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            row = self._values.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
                    break
            row[-2] += value
            row[-1] += 1

    def snapshot(self, **labels: str) -> dict[str, float]:
        """``{"count", "sum"}`` plus ``{le: cumulative count}`` for one label set (used by tests and tools)."""
        with self._lock:
            row = list(self._values.get(self._key(labels), [0.0] * (len(self.buckets) + 2)))
        out: dict[str, float] = {"count": row[-1], "sum": row[-2]}
        running = 0.0
        for bound, n in zip(self.buckets, row):
            running += n
            out[_format_value(bound)] = running
        return out

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._values.items())
        lines = self.header()
        for key, row in items:
            running = 0.0
            for bound, n in zip(self.buckets, row):
                running += n
                le = 'le="' + _format_value(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_format_value(running)}")
            inf = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, inf)} {_format_value(row[-1])}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_format_value(row[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_format_value(row[-1])}")
        return lines


class ServeMetrics:
    """Every metric the service exports.  ``model`` is a served model name, or "" for requests that
    name no served model (unknown names are never used as label values, to bound cardinality)."""

    def __init__(self) -> None:
        self.requests = Counter("distilrt_requests_total", "HTTP requests answered, by route, model and status code.",
                                ("route", "model", "status"))
        self.errors = Counter("distilrt_request_errors_total", "HTTP requests answered with a 4xx or 5xx status.",
                              ("route", "model", "status"))
        self.latency = Histogram("distilrt_request_duration_seconds", "Time from request arrival to response.",
                                 ("route", "model"), buckets=LATENCY_BUCKETS)
        self.batch_inputs = Histogram("distilrt_batch_size", "Inputs per model call (after dynamic batching).",
                                      ("model",), buckets=BATCH_BUCKETS)
        self.batch_requests = Histogram("distilrt_batch_requests", "Requests coalesced into one batch.",
                                        ("model",), buckets=BATCH_BUCKETS)
        self.inference = Histogram("distilrt_inference_duration_seconds", "Time one batch spends in the model.",
                                   ("model",), buckets=LATENCY_BUCKETS)
        self.queue_depth = Gauge("distilrt_queue_depth", "Requests waiting for a batch slot.", ("model",))
        self.rejected = Counter("distilrt_rejected_total", "Requests refused because the model's queue was full.",
                                ("model",))
        self.ready = Gauge("distilrt_model_ready", "1 once the model is loaded and warmed up.", ("model",))
        self.in_flight = Gauge("distilrt_requests_in_flight", "HTTP requests received and not yet answered.",
                               ("route",))
        self._families: tuple[_Family, ...] = (
            self.requests, self.errors, self.latency, self.batch_inputs, self.batch_requests,
            self.inference, self.queue_depth, self.rejected, self.ready, self.in_flight,
        )

    def observe_request(self, *, route: str, model: str, status: int, seconds: float) -> None:
        self.requests.inc(route=route, model=model, status=str(status))
        if status >= 400:
            self.errors.inc(route=route, model=model, status=str(status))
        self.latency.observe(seconds, route=route, model=model)

    def render(self) -> str:
        lines: list[str] = []
        for family in self._families:
            lines.extend(family.render())
        return "\n".join(lines) + "\n"
