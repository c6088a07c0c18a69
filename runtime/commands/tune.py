"""distilrt tune BUNDLE: time engine x precision x threads/streams on this host; record the fastest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "time every engine, precision and thread/stream setting for a bundle here; the fastest becomes its default"
DESCRIPTION = """\
Time each way this host can run BUNDLE (ONNX Runtime int8 / fp32, and with openvino installed
OpenVINO bf16 / static int8 / int8, each with one stream or one per core) at 1x128, 1x384, 8x128 and
a mixed-length bulk run, round-robin, fastest of N turns.  Candidates whose fidelity misses its
target are left out.  The winners go to this host's profile in the user cache directory
($DISTILRT_CACHE_DIR overrides it), which precision="auto", provider="auto" then use.

  distilrt tune models/distilbert-base-uncased-distilled-squad --budget-s 60
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle directory written by `distilrt export`")
    parser.add_argument("--budget-s", type=float, default=None, metavar="N",
                        help="seconds to spend, about (default 120); more gives steadier figures. Loading the "
                             "candidates and one timed turn of each is the least it takes")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")


def run(args: argparse.Namespace) -> int:
    from ..tune import DEFAULT_BUDGET_S, tune

    result = tune(args.bundle, budget_s=args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S)
    if args.json:
        print(json.dumps({"workloads": result.workloads, "latency": result.latency.label,
                          "bulk": result.bulk.label if result.bulk else None, "skipped": result.skipped,
                          "fidelity": result.fidelity, "repeats": result.repeats, "profile": str(result.profile)},
                         indent=2))
        return 0
    names = list(result.workloads)
    labels = sorted({label for per in result.workloads.values() for label in per})
    width = max(len(label) for label in labels)
    print(f"{'candidate':{width}}  " + "  ".join(f"{name:>9}" for name in names) + "   (ms, fastest of "
          f"{result.repeats}; bulk = one pass)")
    for label in labels:
        cells = [result.workloads[name].get(label) for name in names]
        print(f"{label:{width}}  " + "  ".join(f"{c:9.2f}" if c is not None else f"{'-':>9}" for c in cells))
    for label, why in result.skipped.items():
        print(f"left out   {label}: {why}")
    print(f"single calls: {result.latency.label}")
    print(f"bulk:         {result.bulk.label if result.bulk else '-'}")
    print(f"profile       {result.profile} ({result.seconds:.0f} s)")
    return 0
