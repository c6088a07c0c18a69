"""Question answering at batch 1, end to end, per system and length; and session-only passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distilrt.benchmarks.workloads import qa_pair

SYSTEMS = ("torch-fp32", "optimum-fp32", "optimum-int8", "distilrt-fp32", "distilrt-int8")


@pytest.mark.parametrize("length", [32, 128, 384])
@pytest.mark.parametrize("system", SYSTEMS)
def test_qa_batch1(benchmark: Any, qa_runners: dict[str, Any], system: str, length: int) -> None:
    runner = qa_runners[system]
    pairs = [qa_pair(length)]
    benchmark.group = f"qa b1x{length}"
    result = benchmark.pedantic(runner.run, args=(pairs, 1), rounds=10, warmup_rounds=2)
    assert result and "answer" in result[0]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("source", ["distilrt", "optimum"])
@pytest.mark.parametrize("shape", [(1, 128), (1, 384), (8, 128)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_session_only(benchmark: Any, qa_paths: dict[str, Path], source: str, precision: str,
                      shape: tuple[int, int]) -> None:
    from distilrt.benchmarks.kernel import random_feeds, session_for

    session = session_for(source, qa_paths, precision, threads=2)  # as each runtime builds it
    feeds = random_feeds(session, batch=shape[0], seq=shape[1])
    benchmark.group = f"session {shape[0]}x{shape[1]}"
    benchmark.pedantic(session.run, args=(None, feeds), rounds=10, warmup_rounds=2)
