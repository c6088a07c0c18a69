"""distilrt qa BUNDLE --question Q --context C: extractive question answering."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ._common import add_pipeline_arguments, load_pipeline, per_text, read_jsonl, write_json, write_jsonl

HELP = "answer a question from a context (or a JSON Lines file of them)"
DESCRIPTION = """Answer questions from contexts with a question-answering bundle.

  distilrt qa BUNDLE --question "Who?" --context "Jim Henson was a puppeteer."
  distilrt qa BUNDLE --question "Who?" --context-file article.txt --top-k 3
  distilrt qa BUNDLE --jsonl questions.jsonl      # {"question": ..., "context": ...} per line

Prints JSON: the answer (a list when --top-k > 1); with --jsonl, each input line with its "answer"."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--question", "-q", help="the question")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--context", "-c", help="the text to find the answer in")
    source.add_argument("--context-file", type=Path, help="read the context from this UTF-8 file")
    parser.add_argument("--top-k", type=int, default=1, help="answers to return")
    parser.add_argument("--doc-stride", type=int, default=None, help="tokens of overlap between context windows")
    parser.add_argument("--max-answer-len", type=int, default=15, help="longest answer, in tokens")
    parser.add_argument("--max-seq-len", type=int, default=None, help="tokens per window (default min(384, model max))")
    parser.add_argument("--max-question-len", type=int, default=64, help="questions are cut to this many tokens")
    parser.add_argument("--handle-impossible-answer", action="store_true", help="allow the empty answer")
    parser.add_argument("--no-align-to-words", dest="align_to_words", action="store_false",
                        help="do not widen answers to whole words")


def run(args: argparse.Namespace) -> int:
    options = {"top_k": args.top_k, "doc_stride": args.doc_stride, "max_answer_len": args.max_answer_len,
               "max_seq_len": args.max_seq_len, "max_question_len": args.max_question_len,
               "handle_impossible_answer": args.handle_impossible_answer, "align_to_words": args.align_to_words}
    if args.jsonl is not None:
        if args.question or args.context or args.context_file:
            raise InputError("pass either --jsonl or --question/--context, not both")
        records = read_jsonl(args.jsonl, keys=("question", "context"))
        qa = load_pipeline(args, "question-answering")
        answers = per_text(qa(question=[r["question"] for r in records], context=[r["context"] for r in records],
                              **options), records) if records else []
        write_jsonl(records, answers, key="answer")
        return 0
    if args.context_file is not None:
        try:
            context = args.context_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read --context-file {args.context_file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"--context-file {args.context_file} is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start}); save it as UTF-8") from exc
    else:
        context = args.context
    if args.question is None or context is None:
        raise InputError("pass --question and --context (or --context-file), or --jsonl FILE")
    qa = load_pipeline(args, "question-answering")
    write_json(qa(question=args.question, context=context, **options))
    return 0
