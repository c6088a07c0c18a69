"""distilrt eval squad|retrieval BUNDLE --data FILE.json: what each precision costs on your data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "score a bundle's precisions on SQuAD-format data (QA: SQuAD EM/F1; embeddings: retrieval)"
DESCRIPTION = """\
Score each precision of a bundle on a SQuAD v1.1 / v2.0 JSON file, with agreement against fp32.

  distilrt eval squad BUNDLE --data dev-v2.0.json [--precision all] [--limit 500] [--json out.json]
      question answering through the runtime's pipeline (handle_impossible_answer for v2.0 data), scored
      with the official SQuAD metric: exact, f1, total, HasAns_* / NoAns_* (percent), plus the share of
      answers identical to fp32's.
  distilrt eval retrieval BUNDLE --data dev-v1.1.json [...]
      for a feature-extraction bundle: each question retrieves among all paragraphs of the file;
      recall@1, recall@5, MRR, and top-1 agreement with fp32."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("squad", "retrieval"), help="what to evaluate")
    parser.add_argument("bundle", type=Path, help="bundle directory written by `distilrt export`")
    parser.add_argument("--data", type=Path, required=True, metavar="FILE", help="SQuAD-format JSON (v1.1 or v2.0)")
    parser.add_argument("--precision", default="all", metavar="LIST",
                        help="comma-separated precisions (fp32, fp16, int8, int8-static) or all (default); fp32 "
                             "always runs too when the bundle has it, as the agreement reference")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N questions only")
    parser.add_argument("--provider", default="cpu", choices=("auto", "cpu", "cuda", "tensorrt"),
                        help="ONNX Runtime execution provider (default: cpu)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the figures as JSON to OUT")


def run(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..errors import InputError
    from ..eval.data import read_squad
    from ..eval.runner import default_stream, evaluate_retrieval, evaluate_squad, resolve_precisions, table

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    bundle = load_bundle(args.bundle)
    expected = "question-answering" if args.kind == "squad" else "feature-extraction"
    if bundle.task != expected:
        raise InputError(f"`distilrt eval {args.kind}` needs a {expected} bundle; {args.bundle} was exported for "
                         f"{bundle.task}. Use `distilrt eval {'squad' if bundle.task == 'question-answering' else 'retrieval'}` "
                         "or export the checkpoint with --task " + expected)
    data = read_squad(args.data, limit=args.limit)
    precisions = resolve_precisions(args.precision, list(bundle.manifest.variants))
    evaluate = evaluate_squad if args.kind == "squad" else evaluate_retrieval
    report = evaluate(args.bundle, data, precisions, provider=args.provider, progress=default_stream())
    report.update(bundle=str(args.bundle), data=str(args.data))
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0
