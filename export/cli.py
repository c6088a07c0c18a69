"""distilrt export MODEL [MODEL ...] --output DIR: the exporter's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distilrt.runtime.registry import CHECKPOINTS, PRECISIONS, TASKS

HELP = "export checkpoints (hub ids or local directories) to validated ONNX bundles"
DESCRIPTION = f"""\
Export each MODEL to OUTPUT/<name>/ as an ONNX bundle: onnx/model.onnx (fp32), onnx/model_fp16.onnx,
onnx/model_quantized.onnx (int8, dynamic), onnx/model_qdq.onnx (int8-static, calibrated QDQ), tokenizer files, config.json and manifest.json.  Every variant is
validated against PyTorch; an fp32 or fp16 variant outside tolerance fails the export.

Known checkpoints: {", ".join(CHECKPOINTS.names())}.
Any other BERT / DistilBERT / RoBERTa checkpoint works too; its task is read from its config.
Needs the export extra: pip install 'distilrt[export]'."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="hub id or local checkpoint directory")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="directory to write bundles into (one subdirectory per MODEL)")
    parser.add_argument("--precision", default=",".join(PRECISIONS), metavar="LIST",
                        help=f"comma-separated variants to build, from {', '.join(PRECISIONS)} (default: all)")
    parser.add_argument("--task", default="auto", choices=("auto", *TASKS),
                        help="task head to export; auto reads it from the registry or the config (default: auto)")
    parser.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: 18)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to export")
    parser.add_argument("--int8-policy", default="accuracy", choices=("accuracy", "speed"),
                        help="accuracy: keep the most-quantised int8 graph that reaches the agreement target "
                             "(top-1 100%%, embedding cosine >= 0.99), keeping sensitive layers fp32 if needed; "
                             "speed: the fastest fully quantised graph (default: accuracy)")
    parser.add_argument("--calibration-data", type=Path, default=None, metavar="FILE",
                        help="calibrate int8-static on your own examples: JSON Lines ({\"text\"} or, for QA, "
                             "{\"question\", \"context\"}) or plain text, one example a line (default: built-in set)")
    parser.add_argument("--static-method", default=None, metavar="LIST",
                        help="comma-separated int8-static calibration methods to compare, from nncf, ort-minmax "
                             "(default: nncf, or ort-minmax without NNCF installed; the most faithful is kept)")
    parser.add_argument("--name", default=None,
                        help="bundle directory name (one MODEL only; default: the last component of MODEL)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing bundle at OUTPUT/<name> (only bundles distilrt wrote)")


def run(args: argparse.Namespace) -> int:
    from distilrt.runtime.errors import InputError, require_extra

    require_extra("export", ("optimum.exporters.onnx", "torch"), feature="`distilrt export`")

    from .api import export_model
    from .report import summary_table

    if args.name and len(args.models) > 1:
        raise InputError(f"--name names one bundle but {len(args.models)} models were given; export them one at a time")
    results = []
    for model in args.models:
        results.append(export_model(model, args.output, precisions=args.precision, task=args.task, opset=args.opset,
                                    force=args.force, revision=args.revision, name=args.name,
                                    int8_policy=args.int8_policy, calibration_data=args.calibration_data,
                                    static_methods=_methods(args.static_method), progress=sys.stderr))
    print(summary_table(results))
    return 0


def _methods(value: str | None) -> list[str] | None:
    from .quantize_static import check_method

    return [check_method(m.strip()) for m in value.split(",") if m.strip()] if value else None
