"""Where a session's time goes: ONNX Runtime's profiler, summed per operator type.

    python -m research.profile MODEL.onnx --shape 1x128 [--shape 8x128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from distilrt.benchmarks.kernel import random_feeds


def profile(model: Path, *, batch: int, seq: int, threads: int = 2, runs: int = 10,
            options_hook: Any = None, disabled_optimizers: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Per-op-type milliseconds per run (mean over ``runs`` after two warm-up runs) and the total.

    ``disabled_optimizers`` None: the rewrites distilrt's runtime leaves out on CPU.
    """
    from distilrt.runtime.engines.onnxruntime import SessionSettings, create_session, session_options

    settings = SessionSettings(threads=threads, disabled_optimizers=disabled_optimizers)
    options = session_options(settings)
    if options_hook:
        options_hook(options)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = create_session(model, settings, options=options)
        feeds = random_feeds(session, batch=batch, seq=seq)
        for _ in range(2):
            session.run(None, feeds)
        session.end_profiling()
        session = create_session(model, settings, options=options)
        for _ in range(2):
            session.run(None, feeds)
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    run_total = []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1000.0
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            run_total.append(event["dur"] / 1000.0)
    measured = run_total[-runs:]
    scale = 1.0 / (runs + 2)
    ops = {k: round(v * scale, 3) for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}
    return {"run_ms": round(sorted(measured)[len(measured) // 2], 3) if measured else None,
            "per_op_ms": ops, "op_sum_ms": round(sum(ops.values()), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--shape", action="append", default=None, help="BATCHxSEQ, repeatable (default 1x128)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--disable", action="append", default=None, metavar="OPTIMIZER",
                        help="ONNX Runtime optimizer to leave out, repeatable (default: what distilrt's runtime "
                             "leaves out on CPU); --disable none keeps every rewrite")
    args = parser.parse_args(argv)
    disabled = None if args.disable is None else tuple(d for d in args.disable if d != "none")
    for shape in args.shape or ["1x128"]:
        batch, seq = (int(x) for x in shape.split("x"))
        found = profile(args.model, batch=batch, seq=seq, threads=args.threads, runs=args.runs,
                        disabled_optimizers=disabled)
        print(f"{args.model.name} {shape}: run p50 {found['run_ms']} ms, ops {found['op_sum_ms']} ms")
        for name, ms in found["per_op_ms"].items():
            print(f"  {name:<32} {ms:9.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
