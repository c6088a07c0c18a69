"""Property: for any unicode question and context, question answering never crashes and answer == context[start:end]."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilrt.runtime import InputError, pipeline

# Characters across scripts, combining marks, ligatures and case-changing letters (lower-casing and
# accent stripping change lengths), control and zero-width characters, emoji, and plenty of spaces.
alphabet = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(list(" \t\n.,?!'-İßﬁé́ñ東京🙂\u200b\u0301\u00a0Ǆ")),
    st.sampled_from(list("abeth  ")),
)
texts = st.one_of(
    st.text(alphabet=alphabet, min_size=0, max_size=120),
    st.lists(st.sampled_from(["the", "a", "Paris", "puppet", "İstanbul", "ﬁne", "東京", ".", "?"]), max_size=40)
    .map(" ".join),
)


@pytest.fixture(scope="module", params=["distilbert-qa-uncased", "distilbert-qa-cased"])
def qa(request, make_bundle):
    return pipeline(model=make_bundle(request.param), precision="fp32", provider="cpu", optimized_cache=False)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=texts, context=texts, top_k=st.integers(1, 4), small_windows=st.booleans(),
       handle_impossible=st.booleans(), align=st.booleans())
def test_answers_index_into_the_context(qa, question: str, context: str, top_k: int, small_windows: bool,
                                        handle_impossible: bool, align: bool) -> None:
    options = {"top_k": top_k, "handle_impossible_answer": handle_impossible, "align_to_words": align}
    if small_windows:  # many windows for even short contexts
        options.update(max_seq_len=40, doc_stride=6, max_question_len=12)
    if not question.strip() or not context.strip():
        with pytest.raises(InputError, match="empty or only whitespace"):
            qa(question=question, context=context, **options)
        return
    result = qa(question=question, context=context, **options)
    answers = [result] if top_k == 1 else result
    assert isinstance(answers, list) and 1 <= len(answers) <= top_k
    for answer in answers:
        assert set(answer) == {"score", "start", "end", "answer"}
        assert 0 <= answer["start"] <= answer["end"] <= len(context)
        assert answer["answer"] == context[answer["start"]:answer["end"]]
        assert answer["score"] >= 0.0
    scores = [a["score"] for a in answers]
    assert scores == sorted(scores, reverse=True)
