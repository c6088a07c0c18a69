"""Cold start per engine: a fresh process from launch to its first answer, and its peak RSS.

    python -m distilrt.benchmarks.coldstart_engines BUNDLE [--repeats 3] [--output FILE.json]
    python -m distilrt.benchmarks.coldstart_engines --tiny      # a tiny seeded QA bundle, built on the spot

One new Python process per measurement (``python -c``), answering one question with
``distilrt.runtime.pipeline`` on: ONNX Runtime int8 (``provider="cpu"``, the default CPU path),
OpenVINO static int8 and bf16 (``provider="openvino"``, where the bundle and CPU allow them) and the
tuned choice (``precision="auto", provider="auto"``).  The parent takes the time from just before it
launches the process to the moment the answer line arrives on the child's stdout; the child reports
its own import / load / first-call split and its peak RSS (``VmHWM`` of /proc/self/status, else
``ru_maxrss``).  Not the parent's ``os.wait4`` ``ru_maxrss``: on Linux it keeps the launching process's
high-water mark across ``exec`` (every child read 719 MB after the parent had built a bundle).
OpenVINO's compiled-model cache (in the user cache directory) is warm: one untimed process per
configuration fills it first.  OpenVINO static int8 is also started once with an empty cache
directory (``$DISTILRT_CACHE_DIR`` pointed at a new folder, so no profile applies either): the cost
of compiling.  Figures are medians over ``--repeats`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .coldstart import CONTEXT, QUESTION

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from distilrt.runtime import pipeline
t1 = time.perf_counter()
qa = pipeline("question-answering", model=sys.argv[1], precision=sys.argv[2], provider=sys.argv[3])
t2 = time.perf_counter()
answer = qa(question=sys.argv[4], context=sys.argv[5])
t3 = time.perf_counter()
info = qa.session.describe()
def peak_rss_mb():
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2, "answer": answer["answer"],
                  "engine": f"{info.engine} {info.precision}", "peak_rss_mb": peak_rss_mb()}), flush=True)
"""

#: label -> (precision, provider)
CONFIGS: dict[str, tuple[str, str]] = {
    "onnxruntime int8": ("int8", "cpu"),
    "openvino int8-static (cache warm)": ("int8-static", "openvino"),
    "openvino bf16 (cache warm)": ("bf16", "openvino"),
    "auto (tuned)": ("auto", "auto"),
}


def run_child(bundle: Path, precision: str, provider: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One fresh process answering one question; launch-to-answer seconds, peak RSS and the child's split."""
    child_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(bundle), precision, provider, QUESTION, CONTEXT],
                                   stdout=subprocess.PIPE, stderr=errors, env=child_env, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        answered = time.perf_counter()
        process.stdout.read()
        process.wait()
        exited = time.perf_counter()
        if process.returncode != 0 or not line.strip():
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-1500:]
            raise RuntimeError(f"{provider} {precision} child exited with {process.returncode}: {tail}")
    report = json.loads(line)
    report.update(to_first_answer_s=answered - started, process_s=exited - started)
    return report


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("to_first_answer_s", "import_s", "load_s", "first_call_s", "process_s", "peak_rss_mb")
    found: dict[str, Any] = {k: round(statistics.median(s[k] for s in samples), 4) for k in keys}
    found.update(engine=samples[0]["engine"], answer=samples[0]["answer"], runs=len(samples))
    return found


def configs_for(bundle: Path) -> dict[str, tuple[str, str]]:
    """The configurations this bundle, host and installed engines allow (see :data:`CONFIGS`)."""
    from distilrt.runtime import load_bundle
    from distilrt.runtime.engines import openvino as ov_engine

    variants = load_bundle(bundle).manifest.variants
    chosen = {}
    for label, (precision, provider) in CONFIGS.items():
        if provider == "openvino" and not ov_engine.available():
            continue
        if precision == "bf16" and not ov_engine.has_native_bf16():
            continue
        if precision not in ("auto", "bf16") and precision not in variants:
            continue
        chosen[label] = (precision, provider)
    return chosen


def measure(bundle: Path, *, repeats: int, say: Any = None) -> dict[str, Any]:
    """Median cold start of each configuration (see the module docstring); ``say`` gets progress lines."""
    say = say or (lambda message: None)
    results: dict[str, Any] = {"load_average_before": list(os.getloadavg())}
    configs = configs_for(bundle)
    if "openvino int8-static (cache warm)" in configs:
        with tempfile.TemporaryDirectory(prefix="distilrt-coldstart-") as empty:
            say("  openvino int8-static, empty compiled-model cache")
            results["openvino int8-static (cache cold)"] = _summary(
                [run_child(bundle, "int8-static", "openvino", env={"DISTILRT_CACHE_DIR": empty})])
    for label, (precision, provider) in configs.items():
        say(f"  {label}: one untimed process (fills the compiled-model cache), then {repeats}")
        run_child(bundle, precision, provider)
        results[label] = _summary([run_child(bundle, precision, provider) for _ in range(repeats)])
    ours, base = results.get("openvino int8-static (cache warm)"), results.get("onnxruntime int8")
    if ours and base:
        results["openvino_vs_onnxruntime"] = {
            "to_first_answer": round(ours["to_first_answer_s"] / base["to_first_answer_s"], 3),
            "peak_rss": round(ours["peak_rss_mb"] / base["peak_rss_mb"], 3)}
    results["load_average_after"] = list(os.getloadavg())
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| run | engine | launch to first answer s | import s | load s | first call s | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for label, row in results.items():
        if isinstance(row, dict) and "to_first_answer_s" in row:
            lines.append(f"| {label} | {row['engine']} | {row['to_first_answer_s']:.2f} | {row['import_s']:.2f} | "
                         f"{row['load_s']:.2f} | {row['first_call_s']:.2f} | {row['peak_rss_mb']:.0f} |")
    ratio = results.get("openvino_vs_onnxruntime")
    if ratio:
        lines.append(f"\nOpenVINO static int8 (cache warm) / ONNX Runtime int8: {ratio['to_first_answer']:.2f}x the time "
                     f"to first answer, {ratio['peak_rss']:.2f}x the peak RSS")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, nargs="?", help="a question-answering bundle")
    parser.add_argument("--tiny", action="store_true", help="build a tiny seeded QA bundle and measure that")
    parser.add_argument("--repeats", type=int, default=3, help="timed processes per configuration (medians)")
    parser.add_argument("--output", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="distilrt-tiny-") as work:
        if args.tiny:
            from .coldstart import build_tiny

            bundle = build_tiny(Path(work))[1]
        elif args.bundle:
            bundle = args.bundle
        else:
            parser.error("pass a BUNDLE directory, or --tiny")
        results = measure(bundle, repeats=args.repeats, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(results))
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    if args.output:
        from distilrt.runtime.hostinfo import physical_cores

        from .machine import machine_info

        report = {"bundle": str(bundle), "repeats": args.repeats, "machine": machine_info(physical_cores()), "results": results}
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
