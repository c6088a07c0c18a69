"""Calibration examples for static int8: the built-in set or the user's own file, as model feeds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from distilrt.runtime.errors import InputError

from . import textset

#: Examples read from a user's file at most (calibration cost grows with the count, its benefit does not).
MAX_EXAMPLES = 1000


@dataclass(frozen=True)
class CalibrationSet:
    """What the quantiser calibrates on, and how the manifest describes it."""

    examples: tuple[dict[str, str], ...]
    source: str  # "built-in" or the file's path

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "count": len(self.examples)}


def builtin(task: str, *, size: int = textset.DEFAULT_SIZE) -> CalibrationSet:
    return CalibrationSet(tuple(textset.calibration_examples(task, size=size)), "built-in")


def read_file(path: str | Path, task: str) -> CalibrationSet:
    """Read ``path``: JSON Lines (objects with "text", or "question" and "context" for QA) or plain text.

    Plain text gives one example a line.  Blank lines are skipped; at most :data:`MAX_EXAMPLES` are kept.
    """
    path = Path(path).expanduser()
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read calibration data {str(path)!r} ({exc}); pass a UTF-8 text or JSON Lines file") from exc
    lines = [line for line in lines if line]
    if not lines:
        raise InputError(f"calibration data {str(path)!r} holds no examples; write one example a line")
    examples = [_parse(line, number, path, task) for number, line in enumerate(lines[:MAX_EXAMPLES], 1)]
    return CalibrationSet(tuple(examples), str(path))


def _parse(line: str, number: int, path: Path, task: str) -> dict[str, str]:
    record: Any = line
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number} is not valid JSON ({exc.msg}); write one JSON object a line") from exc
    if task == "question-answering":
        if not (isinstance(record, dict) and isinstance(record.get("question"), str)
                and isinstance(record.get("context"), str)):
            raise InputError(f"{path}:{number}: question-answering calibration needs JSON Lines objects with "
                             f"\"question\" and \"context\" strings, got {line[:80]!r}")
        return {"question": record["question"], "context": record["context"]}
    if isinstance(record, dict):
        text = record.get("text")
        if not isinstance(text, str):
            raise InputError(f"{path}:{number}: expected an object with a \"text\" string, got keys {sorted(record)}")
        return {"text": text}
    return {"text": record}


class FeedReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over tokenised examples, one unpadded sequence a feed.

    Unpadded: padded positions would stretch the ranges with values the model never uses.
    """

    def __init__(self, examples: tuple[dict[str, str], ...], tokenizer: Any, input_names: list[str], *,
                 max_length: int, mask_token: str | None = None) -> None:
        self.feeds = [encode(example, tokenizer, input_names, max_length=max_length, mask_token=mask_token)
                      for example in examples]
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = iter(self.feeds)
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.feeds)


def encode(example: dict[str, str], tokenizer: Any, input_names: list[str], *, max_length: int,
           mask_token: str | None = None) -> dict[str, np.ndarray]:
    """One example as a batch-of-one feed for the graph's declared inputs."""
    if "question" in example:
        enc = tokenizer(example["question"], example["context"], truncation="only_second", max_length=max_length,
                        return_tensors="np")
    else:
        text = example["text"]
        if mask_token is not None:
            text = text.replace(textset.MASK, mask_token)
        enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="np")
    return {name: enc[name].astype(np.int64) for name in input_names if name in enc}


def reader_for(checkpoint: Any, calibration: CalibrationSet, input_names: list[str]) -> FeedReader:
    """A :class:`FeedReader` of ``calibration`` tokenised with the checkpoint's own tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path))
    return FeedReader(calibration.examples, tokenizer, input_names, max_length=checkpoint.max_sequence_length,
                      mask_token=tokenizer.mask_token)


def load(checkpoint: Any, data: str | Path | None) -> CalibrationSet:
    """The user's calibration file if given, else the built-in set for the checkpoint's task."""
    return read_file(data, checkpoint.task) if data is not None else builtin(checkpoint.task)
