"""distilrt classify BUNDLE TEXT...: labels and scores from a text-classification bundle."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_pipeline_arguments, run_text_command

HELP = "classify texts with a text-classification bundle"
DESCRIPTION = """Classify texts with a text-classification bundle.

  distilrt classify BUNDLE "I loved it." "Terrible." --top-k 2
  distilrt classify BUNDLE --jsonl texts.jsonl      # {"text": ...} (optionally "text_pair") per line

Prints one JSON result per text: {"label", "score"}, or a list of them with --top-k > 1 / --all."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("text", nargs="*", help="texts to classify")
    parser.add_argument("--top-k", type=int, default=1, help="labels per text")
    parser.add_argument("--all", action="store_true", help="every label, best first")
    parser.add_argument("--function", dest="function_to_apply", choices=("softmax", "sigmoid", "none"),
                        help="override the score function the model config implies")
    parser.add_argument("--truncation", action="store_true", help="cut over-long texts instead of refusing them")


def _classifier_inputs(records: list[dict[str, Any]]) -> list[Any]:
    """Plain texts, or ``{"text", "text_pair"}`` dicts for records that carry a pair."""
    items = [{"text": r["text"], "text_pair": r["text_pair"]} if r.get("text_pair") else r["text"] for r in records]
    if all(isinstance(i, str) for i in items):
        return items
    return [i if isinstance(i, dict) else {"text": i} for i in items]


def run(args: argparse.Namespace) -> int:
    options = {"function_to_apply": args.function_to_apply, "truncation": args.truncation}
    if args.all or args.top_k != 1:  # without top_k each text gets its best label as one dict
        options["top_k"] = None if args.all else args.top_k
    return run_text_command(args, "text-classification", result_key="labels",
                            call=lambda tc, inputs: tc(inputs, **options), inputs_from_records=_classifier_inputs)
