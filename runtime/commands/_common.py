"""Shared parts of the inference commands: pipeline options, JSON Lines in and out."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from ..engines.choose import PRECISION_CHOICES, PROVIDER_CHOICES
from ..errors import InputError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="MODEL",
                        help="bundle directory written by `distilrt export`, or a model id (see `distilrt info`)")
    parser.add_argument("--revision", default=None, help="hub revision for a model id (branch, tag or commit)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="model variant (auto: what `distilrt tune` chose here, else int8 on CPU, fp16 on GPU; "
                             "bf16 runs on OpenVINO)")
    parser.add_argument("--provider", default="auto", choices=PROVIDER_CHOICES,
                        help="ONNX Runtime execution provider, or openvino (auto: see `distilrt info BUNDLE`)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model call")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--streams", type=int, default=None,
                        help="CPU: run this many batches at a time, one core each (bulk --jsonl work: try "
                             "--streams 2 --batch-size 1 on two cores)")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help="read one JSON object per line from FILE ('-' for stdin); write one result per line")


def load_pipeline(args: argparse.Namespace, task: str) -> Any:
    from ..pipeline import pipeline

    return pipeline(task, model=args.bundle, precision=args.precision, provider=args.provider,
                    batch_size=args.batch_size, threads=args.threads, streams=args.streams, revision=args.revision)


def per_text(result: Any, inputs: list[Any]) -> list[Any]:
    """One result per input: pipelines give a list of one input that input's bare result, as transformers does."""
    return [result] if len(inputs) == 1 else list(result)


def run_text_command(
    args: argparse.Namespace,
    task: str,
    *,
    call: Callable[[Any, list[Any]], Any],
    result_key: str,
    inputs_from_records: Callable[[list[dict[str, Any]]], list[Any]] = lambda records: [r["text"] for r in records],
    missing: str = "pass at least one text, or --jsonl FILE",
) -> int:
    """The shape every text command shares: texts from the command line (one JSON result per line) or
    records from ``--jsonl`` (each record echoed with its result under ``result_key``)."""
    if args.jsonl is not None:
        if args.text:
            raise InputError("pass either --jsonl or texts, not both")
        records = read_jsonl(args.jsonl, keys=("text",))
        pipe = load_pipeline(args, task)
        results = list(call(pipe, inputs_from_records(records))) if records else []
        write_jsonl(records, results, key=result_key)
        return 0
    if not args.text:
        raise InputError(missing)
    pipe = load_pipeline(args, task)
    for result in call(pipe, list(args.text)):
        write_json(result)
    return 0


def read_jsonl(path: Path, *, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Records from a JSON Lines file (``-`` = stdin); each must be an object holding ``keys``."""
    try:
        handle: TextIO = sys.stdin if str(path) == "-" else open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read --jsonl {path}: {exc.strerror or exc}; pass an existing JSON Lines file") from exc
    records = []
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise InputError(f"{path} line {number} is not JSON: {exc}") from exc
            if not isinstance(record, dict) or any(k not in record for k in keys):
                raise InputError(f"{path} line {number} must be a JSON object with {', '.join(repr(k) for k in keys)}")
            records.append(record)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    finally:
        if handle is not sys.stdin:
            handle.close()
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(value: Any, *, stream: TextIO | None = None) -> None:
    print(json.dumps(_plain(value), ensure_ascii=False), file=stream or sys.stdout)


def write_jsonl(records: list[dict[str, Any]], results: list[Any], *, key: str = "result") -> None:
    """One line per input record: the record's own fields plus ``key``."""
    for record, result in zip(records, results):
        write_json({**record, key: result})


