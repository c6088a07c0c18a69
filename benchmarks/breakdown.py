"""Where a static int8 model's time goes in OpenVINO: per operator type, from OpenVINO's performance counters.

    python -m distilrt.benchmarks.breakdown BUNDLE [--shape 1x384] [--runs 20] [--threads 2] [--output FILE.json]

Compiles the bundle's ``int8-static`` file as distilrt's OpenVINO engine does (latency hint, one stream),
runs random token ids of the shape, and sums each executed node's own time by OpenVINO node type and
kernel (e.g. ``FullyConnected`` with a ``brgemm_avx512_amx`` int8 kernel, ``MatMul`` for attention,
``MVN`` for layer norms), median over ``--runs``; the total is the sum of those medians.  It answers what share of the model's time the int8
GEMMs take, which bounds the efficiency :mod:`distilrt.benchmarks.efficiency` reports.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def measure(bundle: Path, *, shape: tuple[int, int], runs: int, threads: int) -> dict[str, Any]:
    from distilrt.runtime import load_bundle
    from distilrt.runtime.engines import openvino as ov_engine
    from distilrt.runtime.engines.timing import random_token_feeds

    load_before = list(os.getloadavg())
    loaded = load_bundle(bundle)
    variant = loaded.manifest.variants[ov_engine.STATIC_INT8]
    config = {**ov_engine.compile_config(precision=ov_engine.STATIC_INT8, threads=threads, streams=1,
                                         hint="latency", cache_dir=None), "PERF_COUNT": "YES"}
    compiled = ov_engine.core().compile_model(str(bundle / variant.file), "CPU", config)
    request = compiled.create_infer_request()
    names = [port.any_name for port in compiled.inputs]
    feed = random_token_feeds(names, (shape,), vocab_size=loaded.vocab_size or 1000)[0]
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in range(runs + 2):
        request.infer(feed)
        if run < 2:  # warm-up
            continue
        per_run: dict[tuple[str, str], float] = defaultdict(float)
        for info in request.profiling_info:
            if info.status.name == "EXECUTED":
                per_run[(info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1000
        for key, ms in per_run.items():
            samples[key].append(ms)
    medians = {key: float(np.median(ms)) for key, ms in samples.items()}
    total = sum(medians.values())  # the rows' own sum, so their shares add up to the whole
    rows = sorted(({"node_type": kind, "kernel": kernel, "ms": round(ms, 3), "share": round(ms / total, 4)}
                   for (kind, kernel), ms in medians.items()), key=lambda row: row["ms"], reverse=True)
    return {"bundle": str(bundle), "shape": f"{shape[0]}x{shape[1]}", "threads": threads, "runs": runs,
            "total_ms": round(total, 3), "rows": rows, "load_average_before": load_before,
            "load_average_after": list(os.getloadavg())}


def table(result: dict[str, Any], *, top: int = 15) -> str:
    lines = [f"{result['shape']}: {result['total_ms']:.2f} ms of node time (per-kernel medians of {result['runs']} runs)", "",
             "| node type | kernel | ms | share |", "|---|---|---|---|"]
    lines += [f"| {r['node_type']} | {r['kernel']} | {r['ms']:.2f} | {r['share']:.1%} |" for r in result["rows"][:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="a bundle with an int8-static variant")
    parser.add_argument("--shape", default="1x384", help="BATCHxTOKENS")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    batch, tokens = (int(part) for part in args.shape.lower().split("x"))
    result = measure(args.bundle, shape=(batch, tokens), runs=args.runs, threads=args.threads)
    from .engines import emit

    emit(result, table(result), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
