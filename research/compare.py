"""Side-by-side session latency of ONNX graphs (or of one graph under different session settings).

    python -m research.compare A.onnx B.onnx [--shape 1x128 --shape 8x128] [--threads 2]
    python -m research.compare base=model.onnx skipln=model.onnx:none   # ":none" keeps every rewrite

Each candidate gets its own session in turn, which is destroyed before the next one is built, and the
candidates take turns over several rounds.  Timing sessions side by side in one loop is misleading:
ONNX Runtime's pool threads keep spinning after a run and steal the cores from whichever session runs
next (on full-size DistilBERT int8 at 1x128: 23.4 ms interleaved vs 14.0 ms alone).  A candidate is
``[label=]path[:optimizer,optimizer...]``; the optimizers listed are left out (default: what distilrt's
runtime leaves out on CPU; ``none`` for none).
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilrt.benchmarks.kernel import random_feeds

#: Pause between candidates so the previous session's threads have stopped spinning.
PAUSE_S = 0.05


@dataclass(frozen=True)
class Candidate:
    label: str
    path: Path
    disabled: tuple[str, ...] | None  # None: the runtime's CPU default

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        label, _, rest = text.rpartition("=") if "=" in text else ("", "", text)
        path, _, optimizers = rest.partition(":")
        disabled = None if not optimizers else tuple(o for o in optimizers.split(",") if o and o != "none")
        return cls(label or Path(path).stem, Path(path), disabled)


def compare(candidates: list[Candidate], shapes: list[tuple[int, int]], *, threads: int = 2, rounds: int = 3,
            runs: int = 10) -> dict[str, dict[str, float]]:
    """Median milliseconds per ``session.run`` of each candidate at each ``(batch, seq)`` shape."""
    from distilrt.runtime.engines.onnxruntime import SessionSettings, create_session

    times: dict[str, dict[str, list[float]]] = {c.label: {f"{b}x{s}": [] for b, s in shapes} for c in candidates}
    for _ in range(rounds):
        for candidate in candidates:
            session = create_session(candidate.path, SessionSettings(threads=threads,
                                                                     disabled_optimizers=candidate.disabled))
            for batch, seq in shapes:
                feeds = random_feeds(session, batch=batch, seq=seq)
                session.run(None, feeds)  # warm-up
                for _ in range(runs):
                    start = time.perf_counter()
                    session.run(None, feeds)
                    times[candidate.label][f"{batch}x{seq}"].append((time.perf_counter() - start) * 1000)
            del session
            gc.collect()
            time.sleep(PAUSE_S)
    return {label: {shape: float(np.median(v)) for shape, v in per.items()} for label, per in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="[label=]model.onnx[:optimizer,...] (see above)")
    parser.add_argument("--shape", action="append", default=None, help="BATCHxSEQ, repeatable (default 1x128, "
                                                                       "1x384, 8x128)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="turns each candidate takes (default 3)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per shape per turn (default 10)")
    args = parser.parse_args(argv)
    try:
        shapes = [tuple(int(x) for x in s.lower().split("x")) for s in args.shape or ["1x128", "1x384", "8x128"]]
        if any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ValueError
    except ValueError:
        parser.error(f"--shape takes BATCHxSEQ with positive numbers, e.g. 1x128 (got {args.shape})")
    candidates = [Candidate.parse(c) for c in args.candidates]
    missing = [str(c.path) for c in candidates if not c.path.is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    found = compare(candidates, shapes, threads=args.threads, rounds=args.rounds, runs=args.runs)  # type: ignore[arg-type]
    width = max(len(label) for label in found)
    print(f"{'':{width}}  " + "  ".join(f"{b}x{s:<6}" for b, s in shapes) + "  (median ms per run)")
    for label, per in found.items():
        print(f"{label:{width}}  " + "  ".join(f"{ms:8.2f}" for ms in per.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
