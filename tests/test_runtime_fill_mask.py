"""fill-mask through the runtime vs transformers' FillMaskPipeline on the same fp32 weights."""

from __future__ import annotations

from typing import Any

import pytest

from distilrt.runtime import InputError, MaskTokenMissingError
from runtime_fixtures import assert_ranked_apart, close, task_pair  # noqa: F401  (fixture)

MLM_MODELS = ("distilbert-mlm-uncased", "roberta-mlm")
TEMPLATES = ("Paris is the {m} of France.", "The man worked as a {m}.", "Hello, I'm a {m} model.",
             "She drank a cup of {m} before the meeting started this morning, then walked to the station.")
SEVERAL = ("The {m} jumped over the {m} dog.", "{m} is the capital of {m}, and {m} is its river.")


def masked(pipe: Any, template: str) -> str:
    return template.replace("{m}", pipe.mask_token)


def assert_same_predictions(ours: list[dict], reference: list[dict], what: str) -> None:
    assert len(ours) == len(reference), what
    for rank, (o, r) in enumerate(zip(ours, reference)):
        assert (o["token"], o["token_str"], o["sequence"]) == (r["token"], r["token_str"], r["sequence"]), \
            f"{what} #{rank}: {o} vs {r}"
        assert close(o["score"], r["score"]), f"{what} #{rank}: score {o['score']} vs {r['score']}"


def compare(ours_pipe: Any, ref_pipe: Any, text: str, **options: Any) -> Any:
    top_k = options.get("top_k", 5)
    reference = ref_pipe(text, **options)
    wider = ref_pipe(text, **{**options, "top_k": top_k + 1})
    ours = ours_pipe(text, **options)
    several = text.count(ours_pipe.mask_token) > 1
    if not several:
        reference, wider, ours_rows = [reference], [wider], [ours]
    else:
        ours_rows = ours
    assert len(ours_rows) == len(reference)
    for mask_index, (o, r, w) in enumerate(zip(ours_rows, reference, wider)):
        if len(w) > top_k:
            assert_ranked_apart([p["score"] for p in w], f"{text!r} mask {mask_index}")
        assert_same_predictions(o, r, f"{text!r} mask {mask_index} {options}")
    return ours


@pytest.mark.parametrize("name", MLM_MODELS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_single_mask_matches_transformers(task_pair, name: str, template: str) -> None:
    ours, ref = task_pair("fill-mask", name)
    result = compare(ours, ref, masked(ours, template))
    assert isinstance(result, list) and len(result) == 5 and isinstance(result[0], dict)
    compare(ours, ref, masked(ours, template), top_k=1)


@pytest.mark.parametrize("name", MLM_MODELS)
@pytest.mark.parametrize("template", SEVERAL)
def test_several_masks_match_transformers(task_pair, name: str, template: str) -> None:
    ours, ref = task_pair("fill-mask", name)
    result = compare(ours, ref, masked(ours, template), top_k=3)
    assert len(result) == template.count("{m}") and all(len(row) == 3 for row in result)
    # the other masks stay visible in each proposed sequence
    assert all(ours.mask_token in p["sequence"] for row in result for p in row)


@pytest.mark.parametrize("name", MLM_MODELS)
@pytest.mark.parametrize("targets", [["capital", "city", "paris"], ["capital"], "museum", ["city", "zzqx"]])
def test_targets_match_transformers(task_pair, name: str, targets: Any) -> None:
    ours, ref = task_pair("fill-mask", name)
    text = masked(ours, TEMPLATES[0])
    result = compare(ours, ref, text, targets=targets, top_k=3)
    allowed = {ours.tokenizer.token_to_id(t) or ours.tokenizer.encode_plain(t).ids[0]
               for t in ([targets] if isinstance(targets, str) else targets)}
    assert {p["token"] for p in result} <= allowed
    assert len(result) == min(3, len(allowed))


def test_roberta_renders_leading_space_tokens(task_pair) -> None:
    ours, ref = task_pair("fill-mask", "roberta-mlm")
    words = ("Ġcapital", "Ġcity", "Ġmuseums", "Ġman", "Ġlanguage")
    assert all(ours.tokenizer.token_to_id(w) is not None for w in words)
    text = "Paris is the <mask> of France."
    predictions = compare(ours, ref, text, targets=list(words), top_k=len(words) - 1)
    for p in predictions:
        assert p["token_str"].startswith(" ") and "Ġ" not in p["token_str"]
        assert p["sequence"] == f"Paris is the{p['token_str']} of France."


@pytest.mark.parametrize("name", MLM_MODELS)
def test_mixed_length_batch_matches_one_by_one(task_pair, name: str) -> None:
    ours, ref = task_pair("fill-mask", name, batch_size=2)
    texts = [masked(ours, t) for t in (*TEMPLATES, SEVERAL[0], TEMPLATES[1] * 3)]
    results = ours(texts, top_k=2)
    assert len(results) == len(texts)
    references = ref(texts, top_k=2)
    for text, result, reference in zip(texts, results, references):
        rows = result if text.count(ours.mask_token) > 1 else [result]
        ref_rows = reference if text.count(ours.mask_token) > 1 else [reference]
        for o, r in zip(rows, ref_rows):
            assert_same_predictions(o, r, text)


@pytest.mark.parametrize("name, wrong", [("distilbert-mlm-uncased", "<mask>"), ("roberta-mlm", "[MASK]")])
def test_missing_mask_names_the_model_mask_token(task_pair, name: str, wrong: str) -> None:
    ours, _ = task_pair("fill-mask", name)
    with pytest.raises(MaskTokenMissingError, match=repr(ours.mask_token).replace("[", r"\[").replace("]", r"\]")):
        ours(f"Paris is the {wrong} of France.")
    with pytest.raises(MaskTokenMissingError, match=r"inputs\[1\]"):
        ours([masked(ours, TEMPLATES[0]), "no mask here"])


@pytest.mark.parametrize("value, message", [("", "empty"), ("  ", "empty"), (7, "must be a string"),
                                            (["ok", b"bytes"], "must be a string")])
def test_bad_input(task_pair, value: Any, message: str) -> None:
    ours, _ = task_pair("fill-mask", "distilbert-mlm-uncased")
    with pytest.raises(InputError, match=message):
        ours(value)


def test_too_long_text_is_refused_not_truncated(task_pair) -> None:
    ours, _ = task_pair("fill-mask", "distilbert-mlm-uncased")
    with pytest.raises(InputError, match="maximum of 512"):
        ours("word " * 600 + "[MASK].")
    with pytest.raises(InputError, match="top_k"):
        ours("[MASK].", top_k=0)


def test_top_k_equals_a_stable_sort_of_the_whole_row_ties_included() -> None:
    import numpy as np

    from distilrt.runtime.tasks.fill_mask import _top_k_stable

    rng = np.random.default_rng(0)
    for _ in range(500):
        row = rng.integers(0, 4, int(rng.integers(1, 50))).astype(np.float32)  # many ties
        k = int(rng.integers(1, 60))
        np.testing.assert_array_equal(_top_k_stable(row, k), np.argsort(-row, kind="stable")[:k])
