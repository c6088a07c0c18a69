"""distilrt bench: distilrt against transformers, PyTorch int8 and optimum, and against the GEMM peak."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..hostinfo import physical_cores

HELP = "benchmark distilrt against transformers, PyTorch int8 and optimum on this machine"
DESCRIPTION = """\
Measures, in one run and on the same weights and thread budget: the transformers pipeline on PyTorch
fp32, bf16 and dynamic int8, optimum ORTModel fp32/int8 inside the transformers pipeline, OpenVINO at its
default precision and with NNCF int8 (when the openvino extra is installed); distilrt on each engine
(ONNX Runtime fp32/fp16/int8, OpenVINO bf16/static int8) and distilrt-auto, which runs what
`distilrt tune` chose on this host (the bundle is tuned first when this host has no profile for it);
plus the machine's fp32/int8 GEMM peaks, cold start, RSS and sizes. Writes results.json, results.md and
PNG plots to --output. Needs the `bench` and `export` extras. The first run builds the models
(full-size stand-ins with seeded random weights, and the real all-MiniLM-L6-v2) into --work-dir.
Progress goes to stderr, one line per measurement.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"),
                        help="directory for results.json, results.md and the plots (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: DistilBERT-QA only, b1x128 and 16 mixed pairs, short timings, a 30 s "
                             "tune (about 4 min once the models are cached, under load)")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread budget for every system (default: physical cores)")
    parser.add_argument("--models", default=None,
                        help="comma-separated subset of: distilbert-qa, distilbert-mlm, distilroberta-mlm, minilm-embed")
    parser.add_argument("--systems", default=None,
                        help="comma-separated subset of the systems above, e.g. optimum-int8,openvino-int8,"
                             "distilrt-int8 (an unknown name lists them all)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="time spent per latency measurement (default: 3, quick: 0.5)")
    parser.add_argument("--tune-budget-s", type=float, default=None, metavar="N",
                        help="seconds for `distilrt tune` when the tuned row needs it (default: 120, quick: 30)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="cache for built checkpoints and bundles (default: ~/.cache/distilrt-bench, "
                             "or $DISTILRT_BENCH_CACHE)")


def _subset(value: str | None, known: tuple[str, ...], flag: str) -> tuple[str, ...] | None:
    from ..errors import UnknownNameError

    if value is None:
        return None
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise UnknownNameError(f"{flag} got {', '.join(unknown) or 'nothing'}; known: {', '.join(known)}")
    return chosen


def run(args: argparse.Namespace) -> int:
    try:
        from distilrt.benchmarks import report
        from distilrt.benchmarks.models import DEFAULT_WORK_DIR, MODELS
        from distilrt.benchmarks.runner import Progress, Settings, run as run_bench
        from distilrt.benchmarks.systems import SYSTEMS
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            f"distilrt bench needs the bench and export extras ({exc}); "
            "install them with: pip install 'distilrt[export,bench]'") from exc

    overrides: dict = {"work_dir": (args.work_dir or DEFAULT_WORK_DIR).expanduser()}
    overrides["threads"] = args.threads or physical_cores()
    models = _subset(args.models, tuple(MODELS), "--models")
    systems = _subset(args.systems, tuple(SYSTEMS), "--systems")
    if models:
        overrides["models"] = models
    if systems:
        overrides["systems"] = systems
    if args.seconds:
        overrides["latency_seconds"] = args.seconds
    if args.tune_budget_s:
        overrides["tune_budget_s"] = args.tune_budget_s
    settings = Settings.quick_mode(**overrides) if args.quick else Settings(**overrides)
    say = Progress()
    say(f"distilrt bench ({'quick' if settings.quick else 'full'}), {settings.threads} threads, "
        f"models: {', '.join(settings.models)}")
    result = run_bench(settings, say=say)
    result["command"] = " ".join(["distilrt", *(shlex.quote(a) for a in sys.argv[1:])]) if sys.argv[1:2] == ["bench"] \
        else None
    written = report.write(result, args.output)
    print(report.markdown(result))
    say("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
