"""Side-by-side timing of candidates: round-robin turns, fastest of N, a pause between turns.

Used by ``distilrt tune`` (engines x precisions x threads/streams) and by the exporter's graph choice.
On a shared machine other load only ever adds time, so the fastest turn is the figure least disturbed
by it, and taking turns exposes every candidate to the same conditions.  Each turn starts after a
short pause: ONNX Runtime's (and OpenVINO's) pool threads keep spinning for a while after a run, and
without the pause they steal the cores from the next candidate (measured on full-size DistilBERT int8
at 1x128: 23.4 ms interleaved vs 14.0 ms alone).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

#: Pause before each candidate's timed turn, long enough for the previous engine's threads to stop spinning.
SPIN_PAUSE_S = 0.05


def time_round_robin(calls: Mapping[str, Callable[[], Any]], *, repeats: int, warmup: int = 1,
                     pause_s: float = SPIN_PAUSE_S, deadline: float | None = None) -> dict[str, float]:
    """Fastest wall time (ms) of one call of each candidate over ``repeats`` round-robin turns.

    Every candidate is called ``warmup`` times first (first runs allocate arenas and pick kernels).
    ``deadline`` (a ``time.perf_counter()`` value) ends the rounds early, after at least one full round.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    for call in calls.values():
        for _ in range(warmup):
            call()
    best = {label: float("inf") for label in calls}
    for _ in range(repeats):
        for label, call in calls.items():
            time.sleep(pause_s)
            start = time.perf_counter()
            call()
            best[label] = min(best[label], (time.perf_counter() - start) * 1000)
        if deadline is not None and time.perf_counter() > deadline:
            break
    return best


def random_token_feeds(input_names: list[str], shapes: tuple[tuple[int, int], ...], *, vocab_size: int,
                       seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One feed dict per ``(batch, tokens)`` shape: random ids, full attention, zero token types."""
    rng = np.random.default_rng(seed)
    feeds = []
    for batch, tokens in shapes:
        raw = {"input_ids": rng.integers(5, max(vocab_size, 6), (batch, tokens), dtype=np.int64),
               "attention_mask": np.ones((batch, tokens), dtype=np.int64),
               "token_type_ids": np.zeros((batch, tokens), dtype=np.int64)}
        feeds.append({name: raw[name] for name in input_names if name in raw})
    return feeds


def time_onnx_files(models: Mapping[str, Path], shapes: tuple[tuple[int, int], ...], *, vocab_size: int,
                    repeats: int = 10) -> dict[str, float]:
    """Fastest-of-``repeats`` time (ms) of one pass over ``shapes`` for each ONNX file, on CPU sessions
    built as the runtime builds them (:func:`~distilrt.runtime.engines.onnxruntime.create_session`)."""
    from .onnxruntime import create_session

    calls: dict[str, Callable[[], Any]] = {}
    for label, path in models.items():
        session = create_session(path)
        feeds = random_token_feeds([i.name for i in session.get_inputs()], shapes, vocab_size=vocab_size)

        def call(session: Any = session, feeds: list[dict[str, np.ndarray]] = feeds) -> None:
            for feed in feeds:
                session.run(None, feed)

        calls[label] = call
    return time_round_robin(calls, repeats=repeats)
