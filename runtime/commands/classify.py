"""distilrt classify BUNDLE TEXT...: labels and scores from a text-classification bundle."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_pipeline_arguments, load_pipeline, read_jsonl, write_json, write_jsonl

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


def run(args: argparse.Namespace) -> int:
    options = {"top_k": None if args.all else args.top_k, "function_to_apply": args.function_to_apply,
               "truncation": args.truncation}
    if args.jsonl is not None:
        if args.text:
            raise InputError("pass either --jsonl or texts, not both")
        records = read_jsonl(args.jsonl, keys=("text",))
        tc = load_pipeline(args, "text-classification")
        items = [{"text": r["text"], "text_pair": r["text_pair"]} if r.get("text_pair") else r["text"] for r in records]
        inputs = items if all(isinstance(i, str) for i in items) else [
            i if isinstance(i, dict) else {"text": i} for i in items]
        results = tc(inputs, **options) if records else []
        write_jsonl(records, results, key="labels")
        return 0
    if not args.text:
        raise InputError("pass at least one text, or --jsonl FILE")
    tc = load_pipeline(args, "text-classification")
    for result in tc(list(args.text), **options):
        write_json(result)
    return 0
