"""Shared by the deployment tests: one workload for every task, the direct pipeline's answer to each
request (shaped as the Hugging Face Inference API returns it), and a tolerant comparison."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from distilrt.runtime.serve.handlers import jsonable

#: the tiny test bundles, one per task
TASK_BUNDLES = {
    "question-answering": "distilbert-qa-uncased",
    "fill-mask": "distilbert-mlm-uncased",
    "feature-extraction": "distilbert-features-cased",
    "text-classification": "distilbert-classifier",
}

#: deployments run the fp32 variant: dynamic int8 quantises activations with one scale per batch, so its
#: answers depend on what else shares the batch, which a server decides
PRECISION = "fp32"
#: scores and vectors may differ by float noise between batch compositions (padding) and thread counts
FLOAT_TOL = 1e-5

CONTEXT = "Jim Henson was a nice puppet maker who created The Muppets in Greenville, Mississippi in 1955."


def bodies(task: str) -> list[dict[str, Any]]:
    """Request bodies for ``task``: single and list inputs, default and explicit parameters."""
    if task == "question-answering":
        return [
            {"inputs": {"question": "Who was Jim Henson?", "context": CONTEXT}},
            {"inputs": {"question": "Where?", "context": CONTEXT}, "parameters": {"top_k": 2}},
            {"inputs": [{"question": "When?", "context": CONTEXT}, {"question": "What did he make?", "context": CONTEXT}]},
        ]
    if task == "fill-mask":
        return [
            {"inputs": "Paris is the [MASK] of France."},
            {"inputs": ["The [MASK] sat on the mat.", "A [MASK] of tea."], "parameters": {"top_k": 3}},
        ]
    if task == "feature-extraction":
        return [{"inputs": "A man is eating food."}, {"inputs": ["A man is riding a horse.", "Hello there"]}]
    if task == "text-classification":
        return [{"inputs": "I loved this film."}, {"inputs": ["Terrible.", "Fine, I suppose."],
                                                   "parameters": {"top_k": 1}}]
    raise KeyError(task)


@functools.lru_cache(maxsize=None)
def direct_pipeline(bundle: str, threads: int = 1) -> Any:
    from distilrt.runtime import pipeline

    return pipeline(model=bundle, precision=PRECISION, provider="cpu", batch_size=8, threads=threads)


def expected_answer(bundle: str | Path, task: str, body: dict[str, Any]) -> Any:
    """What the direct pipeline answers for ``body``, in the shape the Inference API returns."""
    pipe = direct_pipeline(str(bundle))
    inputs, params = body["inputs"], dict(body.get("parameters") or {})
    if task == "question-answering":
        pairs = inputs if isinstance(inputs, list) else [inputs]
        answers = [jsonable(pipe(question=p["question"], context=p["context"], **params)) for p in pairs]
        return answers if isinstance(inputs, list) else answers[0]
    texts = inputs if isinstance(inputs, list) else [inputs]
    if task == "feature-extraction":
        # the Inference API pools as sentence-transformers does ("auto") and answers [tokens, hidden] per text,
        # where the pipeline returns transformers' [1, tokens, hidden]
        arrays = [np.asarray(pipe(t, **{"pooling": "auto", **params, "return_tensors": True}), dtype=np.float32)
                  for t in texts]
        answers = [(a[0] if a.ndim == 3 else a).tolist() for a in arrays]
    elif task == "text-classification":
        params.setdefault("top_k", None)
        answers = [jsonable(pipe(t, **params)) for t in texts]
        answers = [[a] if isinstance(a, dict) else a for a in answers]
        return answers if isinstance(inputs, list) else [answers[0]]
    else:
        answers = [jsonable(pipe(t, **params)) for t in texts]
    return answers if isinstance(inputs, list) else answers[0]


def assert_same(actual: Any, expected: Any, where: str = "answer") -> None:
    """Equal structure, strings and integers; floats within FLOAT_TOL (absolute and relative)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{where}: {actual!r} != {expected!r}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, (int, float)) and math.isclose(actual, expected, rel_tol=FLOAT_TOL, abs_tol=FLOAT_TOL), (
            f"{where}: {actual!r} != {expected!r}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def single_input_bodies(task: str) -> list[dict[str, Any]]:
    """The bodies of ``task`` that ``huggingface_hub.InferenceClient`` can send (one input each)."""
    return [b for b in bodies(task) if not isinstance(b["inputs"], list)]


def inference_client_answer(client: Any, task: str, body: dict[str, Any]) -> Any:
    """Send ``body`` through ``InferenceClient``'s task method; the answer in the shape of :func:`expected_answer`."""
    inputs, params = body["inputs"], dict(body.get("parameters") or {})
    if task == "question-answering":
        out = client.question_answering(question=inputs["question"], context=inputs["context"], **params)
    elif task == "fill-mask":
        out = client.fill_mask(inputs, **params)
    elif task == "feature-extraction":
        return np.asarray(client.feature_extraction(inputs, **params), dtype=np.float32).tolist()
    else:
        return [[_fields(o) for o in client.text_classification(inputs, **params)]]
    return [_fields(o) for o in out] if isinstance(out, list) else _fields(out)


def _fields(element: Any) -> dict[str, Any]:
    """An InferenceClient output element as the JSON object it was read from (unset optional fields left out)."""
    return {k: v for k, v in dict(element).items() if v is not None}
