"""pytest-benchmark suite: ``python -m pytest research/suite --benchmark-only``.

Not part of ``make test`` (pytest's testpaths is ``tests``).  Models are built once into the same cache
as ``distilrt bench`` (``$DISTILRT_BENCH_CACHE`` or ``~/.cache/distilrt-bench``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

THREADS = 2


@pytest.fixture(scope="session")
def qa_paths() -> dict[str, Path]:
    from distilrt.benchmarks.models import DEFAULT_WORK_DIR, prepare

    return prepare(["distilbert-qa"], DEFAULT_WORK_DIR)["distilbert-qa"]


@pytest.fixture(scope="session")
def qa_runners(qa_paths: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """Loaded systems, one per key, built on first use and closed at the end of the session."""
    from distilrt.benchmarks.models import MODELS
    from distilrt.benchmarks.systems import SYSTEMS, distilrt_available, load

    loaded: dict[str, Any] = {}

    class Lazy(dict):
        def __missing__(self, key: str) -> Any:
            if key.startswith("distilrt") and distilrt_available():
                pytest.skip(distilrt_available())
            loaded[key] = load(SYSTEMS[key], MODELS["distilbert-qa"], qa_paths, threads=THREADS)
            self[key] = loaded[key]
            return loaded[key]

    yield Lazy()
    for runner in loaded.values():
        runner.close()
