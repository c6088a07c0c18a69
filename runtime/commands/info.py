"""distilrt info BUNDLE: manifest, variants, parity figures and the providers available here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show a bundle's manifest, variants, parity figures and the providers available here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle directory written by `distilrt export`")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from ..manifest import Manifest

    manifest = Manifest.read(args.bundle)
    if args.json:
        print(manifest.to_json(), end="")
        return 0
    print(f"bundle      {args.bundle}")
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
        print(f"  {name:<10} {variant.file:<28} {variant.bytes / 1e6:8.1f} MB  max|Δ| vs PyTorch: {diffs}{extra}")
        print(f"             {json.dumps(variant.details, sort_keys=True)[:200]}")
    print(f"providers   {', '.join(ort.get_available_providers())} (onnxruntime {ort.__version__})")
    return 0
