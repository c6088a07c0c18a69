"""distilrt embed BUNDLE TEXT...: sentence embeddings (or token features) as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_pipeline_arguments, run_text_command

HELP = "embed texts with a feature-extraction bundle"
DESCRIPTION = """Compute embeddings with a feature-extraction bundle.

  distilrt embed BUNDLE "A man is eating food." "A man is riding a horse."
  distilrt embed BUNDLE --pooling mean --normalize --jsonl texts.jsonl     # {"text": ...} per line

Pooling "auto" uses the bundle's sentence-transformers pooling (mean + normalise for all-MiniLM-L6-v2),
else returns token features.  Prints one JSON array per text."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("text", nargs="*", help="texts to embed")
    parser.add_argument("--pooling", default="auto", choices=("auto", "none", "mean", "cls", "max"))
    norm = parser.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=None, help="L2-normalise")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalise")
    parser.add_argument("--truncation", action="store_true", default=None,
                        help="cut texts longer than the model's maximum instead of refusing them")


def run(args: argparse.Namespace) -> int:
    options = {"pooling": args.pooling, "normalize": args.normalize, "truncation": args.truncation,
               "return_tensors": True}

    def call(fe: Any, texts: list[str]) -> list[Any]:
        # token states come as [1, tokens, hidden] per text (transformers' shape); print [tokens, hidden]
        return [row[0] if row.ndim == 3 else row for row in fe(texts, **options)]

    return run_text_command(args, "feature-extraction", result_key="embedding", call=call)
