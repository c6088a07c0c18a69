"""transformers' call and return shapes: every input form its four pipelines document, compared result for result.

Each case calls the runtime (fp32 bundle) and transformers' pipeline (PyTorch checkpoint the bundle was
exported from) with the same arguments and requires the same structure (dict vs list, nesting, keys),
the same labels / tokens / spans, and scores within the parity tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from distilrt.runtime import InputError, pipeline
from runtime_fixtures import SQUAD_CONTEXT, SQUAD_QUESTION, close, task_pair  # noqa: F401  (fixture)

OTHER_QUESTION = "Which script can be used to fine-tune a model?"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.", "Paris is the capital of France."]


def assert_same(ours: Any, reference: Any, where: str = "result", *, atol: float = 1e-4) -> None:
    """Same structure and values: lists / dicts / strings / ints exactly, floats within tolerance."""
    if isinstance(reference, dict):
        assert isinstance(ours, dict), f"{where}: {type(ours).__name__} where transformers gives a dict"
        assert set(ours) == set(reference), f"{where}: keys {sorted(ours)} vs {sorted(reference)}"
        for key in reference:
            assert_same(ours[key], reference[key], f"{where}[{key!r}]", atol=atol)
    elif isinstance(reference, list):
        assert isinstance(ours, list), f"{where}: {type(ours).__name__} where transformers gives a list"
        assert len(ours) == len(reference), f"{where}: {len(ours)} items vs {len(reference)}"
        if reference and isinstance(reference[0], float):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), atol=atol, rtol=0, err_msg=where)
            return
        for index, (o, r) in enumerate(zip(ours, reference)):
            assert_same(o, r, f"{where}[{index}]", atol=atol)
    elif isinstance(reference, float):
        assert isinstance(ours, float) and close(ours, reference), f"{where}: {ours!r} vs {reference!r}"
    else:
        assert type(ours) is type(reference) and ours == reference, f"{where}: {ours!r} vs {reference!r}"


def test_model_is_positional_as_in_transformers(make_bundle) -> None:
    bundle = str(make_bundle("distilbert-qa-uncased"))
    qa = pipeline("question-answering", bundle, precision="fp32", provider="cpu")
    assert qa.resolved.how == "local bundle"
    assert qa(SQUAD_QUESTION, SQUAD_CONTEXT) == qa(question=SQUAD_QUESTION, context=SQUAD_CONTEXT)
    with pytest.raises(InputError, match="pass the model"):
        pipeline("question-answering")
    with pytest.raises(InputError, match="own tokenizer"):
        pipeline("question-answering", bundle, tokenizer="bert-base-uncased")


QA_CALLS = {
    "positional pair": ((SQUAD_QUESTION, SQUAD_CONTEXT), {}),
    "keywords": ((), {"question": SQUAD_QUESTION, "context": SQUAD_CONTEXT}),
    "dict": (({"question": SQUAD_QUESTION, "context": SQUAD_CONTEXT},), {}),
    "list of one dict": (([{"question": SQUAD_QUESTION, "context": SQUAD_CONTEXT}],), {}),
    "list of dicts": (([{"question": SQUAD_QUESTION, "context": SQUAD_CONTEXT},
                        {"question": OTHER_QUESTION, "context": SQUAD_CONTEXT}],), {}),
    "questions sharing a context": ((), {"question": [SQUAD_QUESTION, OTHER_QUESTION], "context": SQUAD_CONTEXT}),
    "list of one question": ((), {"question": [SQUAD_QUESTION], "context": [SQUAD_CONTEXT]}),
    "top_k": ((SQUAD_QUESTION, SQUAD_CONTEXT), {"top_k": 3}),
    "top_k over a list": ((), {"question": [SQUAD_QUESTION, OTHER_QUESTION], "context": SQUAD_CONTEXT, "top_k": 2}),
    "impossible answer": ((SQUAD_QUESTION, SQUAD_CONTEXT), {"handle_impossible_answer": True, "top_k": 2}),
    "max_answer_len": ((SQUAD_QUESTION, SQUAD_CONTEXT), {"max_answer_len": 3, "top_k": 2}),
}


@pytest.mark.parametrize("form", list(QA_CALLS))
def test_question_answering_forms(task_pair, form: str) -> None:
    ours, ref = task_pair("question-answering", "distilbert-qa-uncased")
    args, kwargs = QA_CALLS[form]
    assert_same(ours(*args, **kwargs), ref(*args, **kwargs), form)


def test_fill_mask_forms(task_pair) -> None:
    ours, ref = task_pair("fill-mask", "distilbert-mlm-uncased")
    text, other = "Paris is the [MASK] of France.", "The [MASK] jumped over the dog."
    for args, kwargs in [((text,), {}), (([text],), {}), (([text, other],), {}), ((text,), {"top_k": 2}),
                         ((text,), {"targets": ["capital", "city", "paris"]}),
                         ((text,), {"targets": "city", "top_k": 3}),
                         (("[MASK] is the [MASK] of France.",), {"top_k": 2})]:
        assert_same(ours(*args, **kwargs), ref(*args, **kwargs), f"fill-mask {args} {kwargs}")


def test_text_classification_forms(task_pair, make_bundle) -> None:
    ours, ref = task_pair("text-classification", "distilbert-classifier")
    pair = {"text": TEXTS[0], "text_pair": TEXTS[1]}
    for args, kwargs in [((TEXTS[0],), {}), ((TEXTS,), {}), ((TEXTS[0],), {"top_k": None}), ((TEXTS[0],), {"top_k": 1}),
                         ((TEXTS,), {"top_k": 2}), ((TEXTS[0],), {"function_to_apply": "sigmoid"}),
                         ((TEXTS[0],), {"function_to_apply": "none", "top_k": None}),
                         ((TEXTS[0],), {"function_to_apply": "SOFTMAX", "top_k": None}),
                         ((pair,), {}), (([pair, {"text": TEXTS[2]}],), {"top_k": None})]:
        assert_same(ours(*args, **kwargs), ref(*args, **kwargs), f"text-classification {args} {kwargs}")
    assert isinstance(ours(TEXTS[0]), list) and len(ours(TEXTS[0])) == 1  # transformers' list for one string
    # options given to pipeline() apply to every call, as transformers' pipeline(..., top_k=None) does
    every = pipeline("text-classification", str(make_bundle("distilbert-classifier")), precision="fp32",
                     provider="cpu", top_k=None)
    assert_same(every(TEXTS[0]), ref(TEXTS[0], top_k=None), "pipeline(top_k=None)")
    assert_same(every(TEXTS[0], top_k=1), ref(TEXTS[0], top_k=1), "call top_k overrides pipeline's")
    with pytest.raises(InputError, match="does not take"):
        pipeline("text-classification", str(make_bundle("distilbert-classifier")), provider="cpu", topk=3)


def test_feature_extraction_forms(task_pair) -> None:
    ours, ref = task_pair("feature-extraction", "distilbert-features-cased")
    assert_same(ours(TEXTS[0]), ref(TEXTS[0]), "one text (nested lists [1][tokens][hidden])")
    assert_same(ours(TEXTS), ref(TEXTS), "list of texts")
    array = ours(TEXTS[0], return_tensors=True)
    reference = ref(TEXTS[0], return_tensors=True).numpy()
    assert isinstance(array, np.ndarray) and array.shape == reference.shape and array.dtype == np.float32
    np.testing.assert_allclose(array, reference, atol=1e-4, rtol=0)
    long_text = "word " * 600
    limit = ours.max_sequence_length
    cut = ours(long_text, truncation=True, return_tensors=True)
    assert cut.shape[:2] == (1, limit)
    if ref.tokenizer.model_max_length == limit:
        np.testing.assert_allclose(cut, ref(long_text, truncation=True, return_tensors=True).numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours(long_text, tokenize_kwargs={"truncation": True}, return_tensors=True), cut)
    with pytest.raises(InputError, match="truncation=True"):
        ours(long_text)
    pooled = ours(TEXTS, pooling="mean", normalize=True)
    assert isinstance(pooled, list) and len(pooled) == len(TEXTS) and isinstance(pooled[0][0], float)
    vectors = ours.embed(TEXTS, batch_size=1)
    assert vectors.shape == (len(TEXTS), array.shape[-1])  # mean pooling for a plain encoder
    np.testing.assert_allclose(vectors[0], reference[0].mean(0), atol=1e-4, rtol=0)
    assert ours.embed(TEXTS[0]).shape == (array.shape[-1],)
    np.testing.assert_allclose(np.linalg.norm(ours.embed(TEXTS, normalize=True), axis=1), 1.0, atol=1e-5)
