"""question-answering through the runtime vs transformers' QuestionAnsweringPipeline on the same fp32 weights."""

from __future__ import annotations

from typing import Any

import pytest

from distilrt.runtime import InputError
from runtime_fixtures import (  # noqa: F401  (fixtures)
    LONG_CONTEXT,
    SQUAD_CONTEXT,
    SQUAD_QUESTION,
    assert_ranked_apart,
    close,
    qa_pair,
)

QA_MODELS = ("distilbert-qa-uncased", "distilbert-qa-cased")


def as_list(result: Any) -> list[dict[str, Any]]:
    return result if isinstance(result, list) else [result]


def assert_same_answers(ours: Any, reference: Any, what: str) -> None:
    ours, reference = as_list(ours), as_list(reference)
    assert len(ours) == len(reference), f"{what}: {len(ours)} answers vs transformers' {len(reference)}"
    for rank, (o, r) in enumerate(zip(ours, reference)):
        assert (o["answer"], o["start"], o["end"]) == (r["answer"], r["start"], r["end"]), f"{what} #{rank}: {o} vs {r}"
        assert close(o["score"], r["score"]), f"{what} #{rank}: score {o['score']} vs {r['score']}"


def compare(ours_pipe: Any, ref_pipe: Any, question: str, context: str, **options: Any) -> Any:
    top_k = options.get("top_k", 1)
    reference = ref_pipe(question=question, context=context, **options)
    wider = as_list(ref_pipe(question=question, context=context, **{**options, "top_k": top_k + 1}))
    assert_ranked_apart([a["score"] for a in wider], f"{question!r} {options}")
    ours = ours_pipe(question=question, context=context, **options)
    if top_k == 1:
        assert isinstance(ours, dict)
    else:
        assert isinstance(ours, list)
    assert_same_answers(ours, reference, f"{question!r} {options}")
    for answer in as_list(ours):
        assert answer["answer"] == context[answer["start"]:answer["end"]]
    return ours


@pytest.mark.parametrize("name", QA_MODELS)
def test_seed_question_matches_transformers(qa_pair, name: str) -> None:
    ours, ref = qa_pair(name)
    compare(ours, ref, SQUAD_QUESTION, SQUAD_CONTEXT)
    compare(ours, ref, "Who was Jim Henson?", "Jim Henson was a nice puppet maker who created The Muppets.")


@pytest.mark.parametrize("name", QA_MODELS)
@pytest.mark.parametrize("options", [
    {"top_k": 5},
    {"top_k": 3, "handle_impossible_answer": True},
    {"handle_impossible_answer": True},
    {"top_k": 4, "align_to_words": False},
    {"top_k": 2, "max_answer_len": 3},
])
def test_options_match_transformers(qa_pair, name: str, options: dict[str, Any]) -> None:
    ours, ref = qa_pair(name)
    compare(ours, ref, SQUAD_QUESTION, SQUAD_CONTEXT, **options)


@pytest.mark.parametrize("name", QA_MODELS)
@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"max_seq_len": 48, "doc_stride": 16, "top_k": 3},
                                     {"max_seq_len": 64, "doc_stride": 0, "handle_impossible_answer": True, "top_k": 2}])
def test_long_context_is_windowed_like_transformers(qa_pair, name: str, options: dict[str, Any]) -> None:
    ours, ref = qa_pair(name)
    max_seq_len = options.get("max_seq_len", 384)
    windows = ours.tokenizer.encode_windows("Where was Jim Henson born?", LONG_CONTEXT, max_seq_len=max_seq_len,
                                            doc_stride=options.get("doc_stride", min(max_seq_len // 2, 128)),
                                            max_question_len=64)
    assert len(windows) >= 2, "the long context must need several windows"
    compare(ours, ref, "Where was Jim Henson born?", LONG_CONTEXT, **options)


@pytest.mark.parametrize("name", QA_MODELS)
def test_windows_hold_transformers_token_ids(qa_pair, name: str) -> None:
    ours, ref = qa_pair(name)
    question = "Where was Jim Henson born?"
    expected = ref.tokenizer(question, LONG_CONTEXT, truncation="only_second", max_length=64, stride=16,
                             return_overflowing_tokens=True, return_offsets_mapping=True)
    windows = ours.tokenizer.encode_windows(question, LONG_CONTEXT, max_seq_len=64, doc_stride=16, max_question_len=64)
    assert [w.ids for w in windows] == expected["input_ids"]
    assert [w.offsets for w in windows] == [list(map(tuple, o)) for o in expected["offset_mapping"]]
    # Every context token is in some window: nothing was dropped.
    covered = {o for w in windows for o, s in zip(w.offsets, w.sequence_ids) if s == 1}
    full = ref.tokenizer(LONG_CONTEXT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert set(map(tuple, full)) <= covered


@pytest.mark.parametrize("name", QA_MODELS)
def test_mixed_length_batch_keeps_input_order(qa_pair, name: str) -> None:
    ours, ref = qa_pair(name, batch_size=2)
    questions = ["Who was Jim Henson?", SQUAD_QUESTION, "Where was he born?", "What does ONNX Runtime run?",
                 "When did the bridge open?"]
    contexts = ["Jim Henson was a nice puppet.", SQUAD_CONTEXT, LONG_CONTEXT,
                "ONNX Runtime runs models exported from PyTorch.", LONG_CONTEXT[:300]]
    results = ours(question=questions, context=contexts, top_k=2)
    assert isinstance(results, list) and len(results) == len(questions)
    for question, context, result in zip(questions, contexts, results):
        wider = as_list(ref(question=question, context=context, top_k=3))
        assert_ranked_apart([a["score"] for a in wider], question)
        assert_same_answers(result, ref(question=question, context=context, top_k=2), question)
    # the same through dict inputs, and one context shared by several questions
    assert ours([{"question": q, "context": c} for q, c in zip(questions, contexts)], top_k=2) == results
    shared = ours(question=questions[:2], context=SQUAD_CONTEXT)
    assert shared == [ours(question=q, context=SQUAD_CONTEXT) for q in questions[:2]]


def test_long_question_is_cut_to_max_question_len(qa_pair) -> None:
    ours, _ = qa_pair("distilbert-qa-uncased")
    question = " ".join(["why"] * 100) + "?"
    answer = ours(question=question, context=SQUAD_CONTEXT, max_question_len=10, max_seq_len=40)
    assert answer["answer"] == SQUAD_CONTEXT[answer["start"]:answer["end"]]
    windows = ours.tokenizer.encode_windows(question, SQUAD_CONTEXT, max_seq_len=40, doc_stride=8, max_question_len=10)
    assert all(sum(1 for s in w.sequence_ids if s == 0) == 10 for w in windows)


@pytest.mark.parametrize("kwargs, message", [
    ({"question": "", "context": "text"}, "question is empty"),
    ({"question": "Who?", "context": "   \n\t"}, "context is empty"),
    ({"question": 3, "context": "text"}, "must be a string"),
    ({"question": ["a", None], "context": ["x", "y"]}, r"question\[1\] must be a string"),
    ({"question": ["a", "b"], "context": ["x", "y", "z"]}, "2 question"),
    ({"question": "Who?", "context": "text", "top_k": 0}, "top_k"),
    ({"question": "Who?", "context": "text", "max_seq_len": 100000}, "max_seq_len"),
    ({"question": "Who?", "context": "text", "max_answer_len": 0}, "max_answer_len"),
    ({"question": "Who?", "context": "text " * 200, "max_seq_len": 32, "doc_stride": 30}, "doc_stride"),
    ({"question": "why " * 50, "context": "text", "max_seq_len": 20}, "no room"),
])
def test_bad_input_raises_input_error(qa_pair, kwargs: dict[str, Any], message: str) -> None:
    ours, _ = qa_pair("distilbert-qa-uncased")
    with pytest.raises(InputError, match=message):
        ours(**kwargs)


def test_large_doc_stride_is_fine_when_the_context_fits_one_window(qa_pair) -> None:
    ours, ref = qa_pair("distilbert-qa-uncased")
    options = {"max_seq_len": 64, "doc_stride": 60}
    answer = ours(question="Who was Jim Henson?", context="Jim Henson was a nice puppet", **options)
    assert_same_answers(answer, ref(question="Who was Jim Henson?", context="Jim Henson was a nice puppet", **options),
                        "doc_stride larger than the room, one window")
