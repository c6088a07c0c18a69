"""distilrt info BUNDLE: manifest, variants, parity figures and the providers available here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show a bundle's manifest, variants, parity figures and the providers available here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="MODEL",
                        help="bundle directory, or a model id: found in the bundle cache, built from a hub repository's "
                             "ONNX files, or exported on demand (the export extra), in that order")
    parser.add_argument("--revision", default=None, help="hub revision for a model id (branch, tag or commit)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from ..manifest import Manifest

    from ..resolve import resolve_model

    resolution = resolve_model(args.bundle, revision=args.revision)
    manifest = Manifest.read(resolution.path)
    if args.json:
        print(manifest.to_json(), end="")
        return 0
    print(f"bundle      {resolution.path}")
    print(f"resolved    {resolution.describe()}")
    print(f"name        {manifest.name}")
    print(f"task        {manifest.task}")
    print(f"arch        {manifest.architecture} ({manifest.model_type}), max length {manifest.max_sequence_length}")
    print(f"source      {manifest.source.get('model')}")
    print(f"inputs      {', '.join(manifest.inputs)}  ->  outputs {', '.join(manifest.outputs)}")
    if manifest.pooling:
        print(f"pooling     {manifest.pooling}")
    print(f"exported    {manifest.created} with " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items()))
    print("variants")
    for name, variant in {**manifest.variants, **manifest.graphs}.items():
        parity = variant.parity
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in parity.get("max_abs_diff", {}).items())
        extra = ""
        if "top1_agreement" in parity:
            extra += f"; top-1 agreement {parity['top1_agreement']:.0%}"
        if "embedding_cosine_min" in parity:
            extra += f"; cosine min {parity['embedding_cosine_min']:.5f}"
        print(f"  {name:<11} {variant.file:<28} {variant.bytes / 1e6:8.1f} MB  max|Δ| vs PyTorch: {diffs}{extra}")
        agreement = parity.get("agreement")
        if agreement:
            print(f"              {_agreement_line(agreement)}")
        print(f"              {json.dumps(variant.details, sort_keys=True)[:200]}")
    print(f"providers   {', '.join(ort.get_available_providers())} (onnxruntime {ort.__version__})")
    print(f"openvino    {_openvino_line()}")
    print(f"auto        {_auto_line(resolution.path)}")
    return 0


def _agreement_line(figures: dict) -> str:
    """The evaluation-set figures export recorded, and whether they met the target."""
    targets = figures.get("target", {})
    parts = ", ".join(f"{name} {figures[name]:.2%}" if "agreement" in name else f"{name} {figures[name]:.4f}"
                      for name in targets if name in figures)
    verdict = "meets target" if figures.get("target_met") else "MISSES target " + ", ".join(
        f"{name} >= {bound}" for name, bound in targets.items() if name in figures.get("missed", ()))
    return f"vs PyTorch fp32 on {figures.get('items', '?')} evaluation items: {parts}; {verdict}"


def _openvino_line() -> str:
    from importlib import metadata

    from ..engines import openvino as ov_engine

    if not ov_engine.available():
        return "not installed (pip install 'distilrt[openvino]' adds provider='openvino')"
    bf16 = "bf16 native (AMX-BF16 / AVX-512-BF16)" if ov_engine.has_native_bf16() else "no native bf16 on this CPU"
    return f"{metadata.version('openvino')}, {bf16}"


def _auto_line(bundle: Path) -> str:
    """Which engine precision="auto", provider="auto" uses for this bundle here, and why."""
    from ..bundle import load_bundle
    from ..engines.choose import choose_engine

    choice = choose_engine(load_bundle(bundle), precision="auto", provider="auto")
    what = f"{choice.engine} {choice.precision if choice.precision != 'auto' else '(precision auto)'}"
    if choice.threads:
        what += f", {choice.threads} threads"
    if choice.streams and choice.streams > 1:
        what += f", {choice.streams} streams for bulk calls"
    return f"{what} [{choice.source}] — {choice.reason}"
