"""Step-by-step progress for long export work: a line per step on stderr, with its time."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

logger = logging.getLogger(__name__)


class Steps:
    """Announces each step and how long it took.  Silent (log only) unless ``stream`` is given."""

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream
        self.seconds: dict[str, float] = {}

    def _say(self, text: str, *, end: str = "\n") -> None:
        if self.stream is not None:
            print(text, end=end, file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        self._say(f"[{self.label}] {name}{' ' + detail if detail else ''} ...", end="")
        logger.info("%s: %s %s", self.label, name, detail)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._say(" failed")
            raise
        elapsed = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        self._say(f" {elapsed:.1f}s")

    def note(self, text: str) -> None:
        self._say(f"[{self.label}]   {text}")
        logger.info("%s: %s", self.label, text)

