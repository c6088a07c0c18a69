"""distilrt fill-mask BUNDLE TEXT...: the most likely tokens for each mask token."""

from __future__ import annotations

import argparse

from ._common import add_pipeline_arguments, per_text, run_text_command

HELP = "fill the mask token(s) of texts"
DESCRIPTION = """Predict the tokens hidden behind the model's mask token ([MASK] or <mask>).

  distilrt fill-mask BUNDLE "Paris is the [MASK] of France." --top-k 3
  distilrt fill-mask BUNDLE --jsonl texts.jsonl      # {"text": ...} per line

Prints one JSON result per text (a list of predictions; a list of lists when a text has several masks)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("text", nargs="*", help="texts holding the mask token")
    parser.add_argument("--top-k", type=int, default=5, help="predictions per mask")
    parser.add_argument("--targets", help="comma-separated tokens to restrict predictions to")


def run(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    return run_text_command(args, "fill-mask", result_key="predictions",
                            call=lambda fm, texts: per_text(fm(texts, top_k=args.top_k, targets=targets), texts),
                            missing="pass at least one text holding the mask token, or --jsonl FILE")
