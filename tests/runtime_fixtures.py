"""Shared helpers for the runtime tests: reference transformers pipelines and runtime pipelines, built once."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest

#: Score tolerance between the runtime and transformers: the contract's 1e-4 absolute, and 1e-4 relative
#: as well, since random tiny models give scores far below 1e-4 that an absolute bound alone would not test.
SCORE_TOL = 1e-4
#: Two candidates whose scores differ by less than this fraction are a tie that float noise (~1e-7 on
#: logits) may break either way: such an input cannot decide a ranking comparison, so tests refuse it.
TIE_MARGIN = 1e-5

SQUAD_CONTEXT = (
    "Extractive Question Answering is the task of extracting an answer from a text given a question. An example "
    "of a question answering dataset is the SQuAD dataset, which is entirely based on that task. If you would "
    "like to fine-tune a model on a SQuAD task, you may leverage the examples/pytorch/question-answering/run_squad.py script."
)
SQUAD_QUESTION = "What is a good example of a question answering dataset?"

LONG_CONTEXT = " ".join([
    "The bridge opened to traffic in 1937 after four years of construction; for decades it was the longest span.",
    "Jim Henson was a nice puppet maker who created The Muppets. He was born in Greenville, Mississippi in 1936.",
    "Paris is the capital and most populous city of France. The city is known for its museums, cafés and architecture.",
    "In meteorology, precipitation is any product of the condensation of atmospheric water vapor that falls under "
    "gravity. The main forms of precipitation include drizzle, rain, sleet, snow, graupel and hail.",
    "Water boils at 100 degrees Celsius at sea level. Mount Everest is 8,849 metres tall. Tokyo hosted the Olympics.",
] * 4)


@functools.lru_cache(maxsize=None)
def reference_pipeline(task: str, checkpoint: str) -> Any:
    """The transformers pipeline on the PyTorch checkpoint the bundle was exported from."""
    from transformers import pipeline as hf_pipeline

    return hf_pipeline(task, model=checkpoint, tokenizer=checkpoint, device=-1)


@functools.lru_cache(maxsize=None)
def runtime_pipeline(bundle: str, task: str | None = None, precision: str = "fp32", batch_size: int = 32) -> Any:
    from distilrt.runtime import pipeline

    return pipeline(task, model=bundle, precision=precision, provider="cpu", batch_size=batch_size)


@pytest.fixture(scope="session")
def qa_pair(make_checkpoint, make_bundle):
    """qa_pair(name) -> (runtime QA pipeline on the fp32 bundle, transformers QA pipeline on the checkpoint)."""

    def make(name: str, *, precision: str = "fp32", batch_size: int = 32) -> tuple[Any, Any]:
        bundle = str(make_bundle(name))
        return (runtime_pipeline(bundle, None, precision, batch_size),
                reference_pipeline("question-answering", str(make_checkpoint(name))))

    return make


@pytest.fixture(scope="session")
def task_pair(make_checkpoint, make_bundle):
    """task_pair(task, name) -> (runtime pipeline on the fp32 bundle, transformers pipeline on the checkpoint)."""

    def make(task: str, name: str, *, precision: str = "fp32", batch_size: int = 32) -> tuple[Any, Any]:
        return (runtime_pipeline(str(make_bundle(name)), None, precision, batch_size),
                reference_pipeline(task, str(make_checkpoint(name))))

    return make


def assert_ranked_apart(scores: list[float], what: str) -> None:
    """Precondition of a ranking comparison: consecutive reference scores differ by more than TIE_MARGIN."""
    for a, b in zip(scores, scores[1:]):
        assert abs(a - b) > TIE_MARGIN * max(abs(a), abs(b)), (
            f"{what}: reference scores {a!r} and {b!r} tie within {TIE_MARGIN}; the comparison cannot decide. "
            "Pick an input without a tie"
        )


def close(a: float, b: float, tol: float = SCORE_TOL) -> bool:
    """Within ``tol`` absolute and ``tol`` relative."""
    return abs(a - b) <= tol and math.isclose(a, b, rel_tol=tol, abs_tol=1e-12)


def bundle_path(make_bundle, name: str) -> Path:
    return Path(make_bundle(name))
