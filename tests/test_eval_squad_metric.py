"""The SQuAD metric against hand-computed cases and against transformers' port of the official script."""

from __future__ import annotations

import pytest

from distilrt.runtime.eval.squad_metric import exact_match, gold_answers, normalize_answer, score, token_f1


@pytest.mark.parametrize(("text", "normalised"), [
    ("The Cat sat.", "cat sat"),
    ("  an   apple,\tthe pear ", "apple pear"),
    ("A.B.C", "abc"),  # punctuation is removed, not turned into spaces
    ("Theatre and anthem", "theatre and anthem"),  # articles only as whole words
    ("", ""),
])
def test_normalisation(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_exact_match_ignores_case_articles_punctuation_and_spacing() -> None:
    assert exact_match("the Eiffel Tower", "Eiffel  tower.") == 1
    assert exact_match("Eiffel Tower", "Tower") == 0


def test_token_f1_by_hand() -> None:
    # gold {swiss, alps}, prediction {alps}: precision 1, recall 1/2 -> F1 2/3
    assert token_f1("the Swiss Alps", "Alps") == pytest.approx(2 / 3)
    # gold {four, years}, prediction {after, four, years}: precision 2/3, recall 1 -> F1 0.8
    assert token_f1("four years", "after four years") == pytest.approx(0.8)
    # repeated tokens count once per occurrence: gold {a1: new, new, york}, prediction {new, york}
    assert token_f1("new new york", "new york") == pytest.approx(2 * (1 * 2 / 3) / (1 + 2 / 3))
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "something") == 0.0 and token_f1("Paris", "") == 0.0


def test_impossible_questions_have_the_empty_gold_answer() -> None:
    assert gold_answers([]) == [""]
    assert gold_answers(["", " . "]) == [""]
    assert gold_answers(["", "Paris"]) == ["Paris"]


def test_score_takes_the_best_gold_and_splits_has_and_no_answer() -> None:
    golds = {
        "q1": ["1,230 kilometres", "about 1,230 kilometres"],  # prediction matches the second gold exactly
        "q2": ["the Swiss Alps"],                                # F1 2/3, exact 0
        "q3": [],                                                # impossible, predicted empty: full marks
        "q4": [],                                                # impossible, an answer was given: 0
        "q5": ["Basel"],                                         # no prediction at all: 0
    }
    predictions = {"q1": "About 1230 kilometres", "q2": "Alps", "q3": "", "q4": "Rotterdam"}
    figures = score(golds, predictions)
    assert figures["total"] == 5
    assert figures["exact"] == pytest.approx(100 * 2 / 5)
    assert figures["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 5)
    assert figures["HasAns_total"] == 3 and figures["NoAns_total"] == 2
    assert figures["HasAns_exact"] == pytest.approx(100 / 3)
    assert figures["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert figures["NoAns_exact"] == pytest.approx(50.0) and figures["NoAns_f1"] == pytest.approx(50.0)


def test_v1_data_has_no_no_answer_split() -> None:
    figures = score({"a": ["x"], "b": ["y z"]}, {"a": "x", "b": "z"})
    assert set(figures) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"}
    assert figures["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_agrees_with_transformers_port_of_the_official_script() -> None:
    squad_metrics = pytest.importorskip("transformers.data.metrics.squad_metrics")
    pairs = [("The Rhine", "rhine"), ("about 1,230 km", "1,230 km"), ("an octopus's three hearts", "three hearts"),
             ("Neil Armstrong, Buzz Aldrin", "Armstrong and Aldrin"), ("", ""), ("x", ""), ("2-1", "2 1"),
             ("café au lait", "Café au lait!"), ("U.S.A.", "USA")]
    for gold, prediction in pairs:
        assert normalize_answer(gold) == squad_metrics.normalize_answer(gold)
        assert exact_match(gold, prediction) == squad_metrics.compute_exact(gold, prediction)
        assert token_f1(gold, prediction) == pytest.approx(squad_metrics.compute_f1(gold, prediction))
