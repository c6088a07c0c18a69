"""distilrt's engines side by side on one bundle, session only: each engine as the runtime builds it.

    python -m distilrt.benchmarks.engines BUNDLE [--repeats 10] [--threads 2] [--output FILE.json]

Rows: ONNX Runtime dynamic int8 and fp32 (the graph the CPU runtime prefers), and with openvino
installed OpenVINO bf16 (where the CPU has AMX-BF16 / AVX-512-BF16) and static int8 (the bundle's
``int8-static`` QDQ file).  Shapes 1x128, 1x384 and 8x128 of random token ids, round-robin, fastest of
``--repeats`` turns with the runtime's pause before each (:mod:`distilrt.runtime.engines.timing`).
Each row also gets its top-1 agreement and largest difference against ONNX Runtime fp32 on those
inputs.  The JSON output carries the machine, versions and load average.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

SHAPES: tuple[tuple[int, int], ...] = ((1, 128), (1, 384), (8, 128))


def engines(bundle: Any, *, threads: int) -> dict[str, Any]:
    """label -> engine for every row this bundle and the installed engines allow here."""
    from distilrt.runtime.engines import openvino as ov
    from distilrt.runtime.engines.onnxruntime import OrtEngine, SessionSettings
    from distilrt.runtime.providers import resolve_providers

    cpu, settings, manifest = resolve_providers("cpu"), SessionSettings(threads=threads), bundle.manifest
    rows: dict[str, Any] = {}
    for precision in ("int8", "fp32"):
        if precision in manifest.variants:
            key = manifest.preferred_graph(precision)
            rows[f"onnxruntime {precision} ({manifest.variant(key).graph})"] = OrtEngine(
                bundle.path, manifest, precision, cpu, settings, file_precision=key)
    if ov.available():
        if ov.has_native_bf16():
            rows["openvino bf16 (plain)"] = ov.OpenVinoEngine(bundle.path, manifest, "bf16", threads=threads)
        if ov.STATIC_INT8 in manifest.variants:
            rows["openvino int8-static"] = ov.OpenVinoEngine(bundle.path, manifest, ov.STATIC_INT8, threads=threads)
    return rows


def measure(bundle_dir: Path, *, repeats: int, threads: int) -> dict[str, Any]:
    from distilrt.runtime import load_bundle
    from distilrt.runtime.engines.timing import random_token_feeds, time_round_robin

    from .machine import machine_info, versions

    bundle = load_bundle(bundle_dir)
    rows = engines(bundle, threads=threads)
    reference = next(e for label, e in rows.items() if label.startswith("onnxruntime fp32"))
    shapes = tuple((b, min(s, bundle.manifest.max_sequence_length)) for b, s in SHAPES)
    feeds = random_token_feeds(reference.input_names, shapes, vocab_size=bundle.vocab_size or 1000)
    want = [reference.run(feed) for feed in feeds]
    fidelity = {}
    for label, engine in rows.items():
        agree, rel = [], 0.0
        for feed, ref in zip(feeds, want):
            got = engine.run(feed)
            for name, value in ref.items():
                agree.append(float((got[name].argmax(-1) == value.argmax(-1)).mean()))
                rel = max(rel, float(np.abs(got[name] - value).max() / np.abs(value).max()))
        fidelity[label] = {"top1_vs_ort_fp32": round(float(np.mean(agree)), 4), "max_rel_diff": round(rel, 5)}
    load_before = os.getloadavg()
    ms = {f"{b}x{s}": time_round_robin({label: (lambda e=e, f=feed: e.run(f)) for label, e in rows.items()},
                                       repeats=repeats, warmup=2)
          for (b, s), feed in zip(shapes, feeds)}
    return {"bundle": bundle.manifest.name, "ms": {k: {label: round(v, 2) for label, v in per.items()} for k, per in ms.items()},
            "fidelity": fidelity, "method": f"session only, fastest of {repeats} round-robin turns, {threads} threads",
            "machine": machine_info(threads), "versions": {**versions(), **_openvino_version()},
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())}


def _openvino_version() -> dict[str, str]:
    from distilrt.runtime.hostinfo import package_versions

    return package_versions(["openvino"])


def table(result: dict[str, Any]) -> str:
    labels = list(next(iter(result["ms"].values())))
    base = next((label for label in labels if label.startswith("onnxruntime int8")), labels[0])
    lines = ["| shape | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for shape, per in result["ms"].items():
        lines.append(f"| {shape} | " + " | ".join(f"{per[label]:.1f} ({per[base] / per[label]:.2f}x)" for label in labels)
                     + " |")
    lines.append("| top-1 vs ORT fp32 | " + " | ".join(f"{result['fidelity'][label]['top1_vs_ort_fp32']:.3f}"
                                                       for label in labels) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure(args.bundle, repeats=args.repeats, threads=args.threads)
    emit(result, table(result), args.output)
    return 0


def emit(result: dict[str, Any], text: str, output: Path | None) -> None:
    """Print a measurement's table and load averages; write its JSON to ``output`` when given."""
    print(text)
    print(f"load average {result['load_average_before']} -> {result['load_average_after']}")
    if output:
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
