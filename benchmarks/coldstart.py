"""Import time, time to first answer in a fresh process, and peak RSS: distilrt runtime vs transformers.pipeline.

Each measurement is a new Python process answering one question.  The child reports its own import,
load and first-answer times and its peak RSS (VmHWM from /proc/self/status); the parent times the
whole process from launch to exit.  Both sides run the same weights: the transformers pipeline reads
the PyTorch checkpoint, distilrt the bundle exported from it.

    python -m distilrt.benchmarks.coldstart --tiny                  # builds a tiny seeded checkpoint + bundle
    python -m distilrt.benchmarks.coldstart --checkpoint CKPT --bundle BUNDLE --precision int8 --repeats 3

``distilrt bench`` reports the same figures (see :func:`distilrt.benchmarks.footprint.cold_start`).

Weights of stand-in checkpoints are random, so answers are meaningless; shapes (and so costs) are real.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUESTION = "What is a good example of a question answering dataset?"
CONTEXT = ("Extractive Question Answering is the task of extracting an answer from a text given a question. An "
           "example of a question answering dataset is the SQuAD dataset, which is entirely based on that task.")

_PRELUDE = r"""
import json, sys, time
t0 = time.perf_counter()
def peak_rss_mb():
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CHILDREN = {
    "distilrt": _PRELUDE + r"""
from distilrt.runtime import pipeline
t1 = time.perf_counter()
qa = pipeline("question-answering", model=sys.argv[1], precision=sys.argv[2], provider="cpu", cache_dir=sys.argv[4] or None,
              optimized_cache=bool(sys.argv[4]))
t2 = time.perf_counter()
answer = qa(question=sys.argv[5], context=sys.argv[6])
t3 = time.perf_counter()
heavy = sorted(m for m in ("torch", "transformers", "optimum") if m in sys.modules)
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_answer_s": t3 - t2, "peak_rss_mb": peak_rss_mb(),
                  "answer": answer["answer"], "heavy_modules": heavy}))
""",
    "transformers": _PRELUDE + r"""
from transformers import pipeline
t1 = time.perf_counter()
qa = pipeline("question-answering", model=sys.argv[3], tokenizer=sys.argv[3], device=-1)
t2 = time.perf_counter()
answer = qa(question=sys.argv[5], context=sys.argv[6])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_answer_s": t3 - t2, "peak_rss_mb": peak_rss_mb(),
                  "answer": answer["answer"]}))
""",
}


def run_child(system: str, *, bundle: Path, checkpoint: Path, precision: str, cache_dir: str) -> dict[str, Any]:
    env = {**os.environ, "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILDREN[system], str(bundle), precision, str(checkpoint), cache_dir,
                           QUESTION, CONTEXT], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{system} child failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_wall_s"] = wall
    return report


def measure(*, bundle: Path, checkpoint: Path, precision: str, repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="distilrt-footprint-") as cache:
        runs = {
            "distilrt (no optimised-model cache)": ("distilrt", ""),
            "distilrt (optimised-model cache warm)": ("distilrt", cache),
            "transformers.pipeline": ("transformers", ""),
        }
        run_child("distilrt", bundle=bundle, checkpoint=checkpoint, precision=precision, cache_dir=cache)  # fills it
        for label, (system, cache_dir) in runs.items():
            samples = [run_child(system, bundle=bundle, checkpoint=checkpoint, precision=precision, cache_dir=cache_dir)
                       for _ in range(repeats)]
            results[label] = {key: statistics.median(s[key] for s in samples)
                              for key in ("import_s", "load_s", "first_answer_s", "process_wall_s", "peak_rss_mb")}
            results[label]["answer"] = samples[0]["answer"]
            if "heavy_modules" in samples[0]:
                results[label]["heavy_modules"] = samples[0]["heavy_modules"]
    return results


def build_tiny(work: Path) -> tuple[Path, Path]:
    from distilrt.export import export_model
    from distilrt.export.standins import FULL, build_standin, tiny

    checkpoint = build_standin(tiny(FULL["distilbert-base-uncased-distilled-squad"]), work / "checkpoint")
    return checkpoint, export_model(str(checkpoint), work / "bundles").path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="PyTorch checkpoint directory (for transformers)")
    parser.add_argument("--bundle", type=Path, help="bundle exported from that checkpoint (for distilrt)")
    parser.add_argument("--tiny", action="store_true", help="build and measure a tiny seeded QA checkpoint instead")
    parser.add_argument("--precision", default="int8", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--repeats", type=int, default=3, help="processes per system (medians are reported)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="distilrt-tiny-") as work:
        if args.tiny:
            checkpoint, bundle = build_tiny(Path(work))
        elif args.checkpoint and args.bundle:
            checkpoint, bundle = args.checkpoint, args.bundle
        else:
            parser.error("pass --tiny, or --checkpoint and --bundle")
        results = measure(bundle=bundle, checkpoint=checkpoint, precision=args.precision, repeats=args.repeats)
    from importlib import metadata

    report = {
        "model": str(checkpoint if not args.tiny else "tiny seeded distilbert-base-uncased-distilled-squad stand-in"),
        "precision (distilrt)": args.precision, "precision (transformers)": "fp32 (PyTorch)", "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "versions": {d: metadata.version(d) for d in ("onnxruntime", "tokenizers", "torch", "transformers")}},
        "results": results,
    }
    print(f"{'':40} {'import s':>9} {'load s':>8} {'1st ans s':>9} {'process s':>9} {'peak RSS MB':>11}")
    for label, row in results.items():
        print(f"{label:40} {row['import_s']:9.3f} {row['load_s']:8.3f} {row['first_answer_s']:9.3f} "
              f"{row['process_wall_s']:9.3f} {row['peak_rss_mb']:11.0f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
