"""Checks shared by every entry point (library, CLI, server): host-bounded counts and text that can be tokenized.

Each check raises :class:`~distilrt.runtime.errors.InputError` naming what was received, what is allowed and
the fix; messages quote at most a short prefix of the value (:func:`short`), so an error never echoes a
megabyte of input back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import DistilrtError, InputError

#: how much of a received value an error message quotes
QUOTE_CHARS = 60


def short(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (with the full length said when cut)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} chars" if isinstance(value, (str, bytes)) else f"{len(text)} chars as text"
    return f"{text[:limit]}... ({size})"


def logical_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_threads(value: Any, *, name: str = "threads", flag: str = "--threads", allow_none: bool = True) -> int | None:
    """A thread count between 1 and the host's logical CPUs (None: let the runtime choose).

    More threads than CPUs only adds contention, and a huge value makes ONNX Runtime reserve a thread
    (and its stack) per unit, which exhausts memory long before it helps.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {short(value)}")
    cpus = logical_cpus()
    if value > cpus:
        raise InputError(f"{name}={value} is more than the {cpus} logical CPUs this process may use; pass "
                         f"{name}={cpus} or fewer ({flag} {cpus}), or leave it unset to use the physical cores")
    return value


def check_text(value: str, where: str) -> str:
    """``value`` if the tokenizer can take it: a lone UTF-16 surrogate (valid in JSON) cannot be encoded."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{where} holds a character that is not valid Unicode text ({exc.reason} at position "
                         f"{exc.start}: {short(value[exc.start:exc.start + 1])}); send UTF-8 text without "
                         "unpaired surrogates") from None
    return value


def read_json_object(path: Path, *, error: type[DistilrtError], what: str, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file, what it should be and ``fix`` otherwise.

    Unreadable files, malformed or absurdly nested JSON and a top level that is not an object all raise
    ``error`` (``what`` says what the file should hold, e.g. "a distilrt manifest").
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise error(f"cannot read {path}: {short(str(exc), 200)}; {fix}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} holds a JSON {type(data).__name__}, not an object; it is not {what}. {fix}")
    return data
