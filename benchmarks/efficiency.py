"""int8 efficiency: a QA bundle's achieved int8 work per second against the bare int8 GEMM peak of this host.

    python -m distilrt.benchmarks.efficiency BUNDLE [--threads 2] [--seconds 1] [--repeats 10] [--output FILE.json]

First the peak: a bare int8 GEMM through each engine, on transformer-layer shapes (``MatMulInteger``
u8 x s8 through ONNX Runtime; a QDQ ``MatMul`` compiled by OpenVINO as its int8-static engine compiles;
see :mod:`distilrt.benchmarks.gemm`); the host's int8 peak is the faster of the two.  Then, at 1x384
(one question + context of exactly 384 tokens), each int8 way distilrt can run the bundle here, and
the tuned one (``precision="auto", provider="auto"``: this host's profile, else the default by CPU
flags): end to end through the QA pipeline (tokenize, run, span search) and session only (the engine
on random token ids of the same shape), fastest of ``--repeats`` round-robin turns with a pause
before each (:mod:`distilrt.runtime.engines.timing`).  Achieved work is the model's matmul operations
(:func:`distilrt.benchmarks.gemm.matmul_ops`) over that time.  The JSON carries the machine, versions
and load average.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

SHAPE = (1, 384)


def _pipelines(bundle: Path, *, threads: int) -> dict[str, Any]:
    """label -> QA pipeline: the tuned choice and every int8 engine this bundle and host allow."""
    from distilrt.runtime import load_bundle, pipeline
    from distilrt.runtime.engines import openvino as ov_engine

    manifest = load_bundle(bundle).manifest
    found = {"auto (tuned)": pipeline("question-answering", model=str(bundle))}
    if "int8" in manifest.variants:
        found["onnxruntime int8"] = pipeline("question-answering", model=str(bundle), precision="int8",
                                             provider="cpu", threads=threads)
    if ov_engine.available() and ov_engine.STATIC_INT8 in manifest.variants:
        found["openvino int8-static"] = pipeline("question-answering", model=str(bundle),
                                                 precision=ov_engine.STATIC_INT8, provider="openvino", threads=threads)
    return found


def measure(bundle: Path, *, threads: int, seconds: float, repeats: int) -> dict[str, Any]:
    from distilrt.runtime.engines import openvino as ov_engine
    from distilrt.runtime.engines.timing import random_token_feeds, time_round_robin

    from . import gemm
    from .machine import machine_info
    from .workloads import qa_pair

    load_before = list(os.getloadavg())
    peaks = {"onnxruntime": gemm.measure_peak("int8", threads=threads, seconds=seconds)}
    if ov_engine.available():
        peaks["openvino"] = gemm.measure_openvino_int8_peak(threads=threads, seconds=seconds)
    host = max(peaks, key=lambda engine: peaks[engine].gops)
    tasks = _pipelines(bundle, threads=threads)
    config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    ops = gemm.matmul_ops(config, batch=SHAPE[0], seq=SHAPE[1], task="question-answering")
    pair = qa_pair(SHAPE[1])
    tokens = len(next(iter(tasks.values())).tokenizer.encode_pairs([(pair.question, pair.context)])[0].ids)
    end_to_end = time_round_robin({label: (lambda t=task: t(question=pair.question, context=pair.context))
                                   for label, task in tasks.items()}, repeats=repeats, warmup=2)
    session = {}
    for label, task in tasks.items():
        feed = random_token_feeds(task.session.input_names, (SHAPE,), vocab_size=task.bundle.vocab_size or 1000)[0]
        session[label] = lambda e=task.session, f=feed: e.run(f)
    session_ms = time_round_robin(session, repeats=repeats, warmup=2)
    rows = {}
    for label, task in tasks.items():
        info = task.session.describe()
        own = peaks.get(info.engine)
        rows[label] = {
            "engine": info.engine, "precision": info.precision, "file": info.file, "threads": info.threads,
            "end_to_end_ms": round(end_to_end[label], 3), "session_ms": round(session_ms[label], 3),
            "end_to_end_gops": round(ops / end_to_end[label] / 1e6, 1),
            "efficiency_end_to_end": round(gemm.efficiency(ops, end_to_end[label] / 1000, peaks[host].gops), 4),
            "efficiency_session": round(gemm.efficiency(ops, session_ms[label] / 1000, peaks[host].gops), 4),
            "efficiency_end_to_end_own_engine_peak": (
                round(gemm.efficiency(ops, end_to_end[label] / 1000, own.gops), 4) if own else None),
        }
    return {"bundle": str(bundle), "shape": f"{SHAPE[0]}x{SHAPE[1]}", "question_context_tokens": tokens, "matmul_gops": round(ops / 1e9, 3),
            "peaks": {k: {"gops": p.gops, "shape": list(p.shape), "per_shape": p.per_shape} for k, p in peaks.items()},
            "host_int8_peak": {"engine": host, "gops": peaks[host].gops}, "rows": rows,
            "method": f"fastest of {repeats} round-robin turns, {threads} threads; peaks: median per shape over "
                      f"{seconds} s, best shape",
            "machine": machine_info(threads), "load_average_before": load_before,
            "load_average_after": list(os.getloadavg())}


def table(result: dict[str, Any]) -> str:
    peak = result["host_int8_peak"]
    lines = ["bare int8 GEMM peak: " + ", ".join(f"{k} {v['gops']:.0f} GOP/s" for k, v in result["peaks"].items())
             + f" -> host peak {peak['gops']:.0f} GOP/s ({peak['engine']})",
             f"model matmul work at {result['shape']}: {result['matmul_gops']:.2f} GOP", "",
             "| run | engine / precision | end to end ms | session ms | end-to-end GOP/s | of host int8 peak "
             "(end to end) | (session) |", "|---|---|---|---|---|---|---|"]
    for label, row in result["rows"].items():
        lines.append(f"| {label} | {row['engine']} {row['precision']} | {row['end_to_end_ms']:.1f} | "
                     f"{row['session_ms']:.1f} | {row['end_to_end_gops']:.0f} | {row['efficiency_end_to_end']:.0%} | "
                     f"{row['efficiency_session']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="a question-answering bundle with int8 variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per GEMM peak shape")
    parser.add_argument("--repeats", type=int, default=10, help="round-robin turns for the model timings")
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure(args.bundle, threads=args.threads, seconds=args.seconds, repeats=args.repeats)
    from .engines import emit

    emit(result, table(result), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
