"""`distilrt eval squad|retrieval` end to end on tiny bundles, with a SQuAD v2-format file written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distilrt.runtime.cli import main
from distilrt.runtime.eval.squad_metric import score

SQUAD = {
    "version": "v2.0",
    "data": [
        {"title": "Rivers", "paragraphs": [
            {"context": "The Rhine rises in the Swiss Alps and flows for about 1,230 kilometres to the North Sea.",
             "qas": [
                 {"id": "r1", "question": "Where does the Rhine rise?", "is_impossible": False,
                  "answers": [{"text": "the Swiss Alps", "answer_start": 19}, {"text": "Swiss Alps", "answer_start": 23}]},
                 {"id": "r2", "question": "How long is the Rhine?", "is_impossible": False,
                  "answers": [{"text": "about 1,230 kilometres", "answer_start": 47}]},
                 {"id": "r3", "question": "Who owns the Rhine?", "is_impossible": True, "answers": []},
             ]},
            {"context": "Barges carry coal, grain and containers between Basel and Rotterdam.",
             "qas": [
                 {"id": "b1", "question": "What do barges carry?", "is_impossible": False,
                  "answers": [{"text": "coal, grain and containers", "answer_start": 13}]},
             ]},
        ]},
        {"title": "Bees", "paragraphs": [
            {"context": "A honeybee colony has one queen, a few hundred drones and thousands of workers.",
             "qas": [
                 {"id": "h1", "question": "How many queens does a colony have?", "is_impossible": False,
                  "answers": [{"text": "one", "answer_start": 23}]},
                 {"id": "h2", "question": "What colour are the drones?", "is_impossible": True, "answers": []},
             ]},
        ]},
    ],
}


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("squad") / "dev.json"
    path.write_text(json.dumps(SQUAD))
    return path


def test_eval_squad_reports_official_keys_per_precision(make_bundle, squad_file: Path, tmp_path: Path, capsys) -> None:
    from distilrt.runtime import pipeline

    bundle = make_bundle("distilbert-qa-uncased")
    out = tmp_path / "squad.json"
    assert main(["eval", "squad", str(bundle), "--data", str(squad_file), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["version"] == "2.0" and report["questions"] == 6
    assert list(report["precisions"]) == ["fp32", "fp16", "int8"]
    for figures in report["precisions"].values():
        assert {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
                "NoAns_total", "agreement_with_fp32"} <= set(figures)
        assert figures["total"] == 6 and figures["HasAns_total"] == 4 and figures["NoAns_total"] == 2
    assert report["precisions"]["fp32"]["agreement_with_fp32"] == 1.0
    # The figures are the metric applied to what the pipeline answers (v2: impossible answers allowed).
    qa = pipeline(model=bundle, precision="int8", provider="cpu")
    questions = [(qa_["id"], qa_["question"], p["context"], [a["text"] for a in qa_["answers"]])
                 for article in SQUAD["data"] for p in article["paragraphs"] for qa_ in p["qas"]]
    answers = qa(question=[q for _, q, _, _ in questions], context=[c for _, _, c, _ in questions],
                 handle_impossible_answer=True)
    expected = score({i: g for i, _, _, g in questions}, {i: a["answer"] for (i, *_), a in zip(questions, answers)})
    for key, value in expected.items():
        assert report["precisions"]["int8"][key] == pytest.approx(value)
    table = capsys.readouterr().out
    assert "precision" in table and "int8" in table and "HasAns_f1" in table


def test_eval_squad_limit_and_precision_choice(make_bundle, squad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "limited.json"
    assert main(["eval", "squad", str(make_bundle("distilbert-qa-uncased")), "--data", str(squad_file),
                 "--precision", "int8", "--limit", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["questions"] == 2 and report["version"] == "1.1"  # the first two questions are answerable
    assert list(report["precisions"]) == ["fp32", "int8"]  # fp32 runs as the agreement reference


def test_eval_retrieval_on_a_feature_bundle(make_bundle, squad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "retrieval.json"
    assert main(["eval", "retrieval", str(make_bundle("distilbert-features-cased")), "--data", str(squad_file),
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["paragraphs"] == 3 and report["questions"] == 6
    for figures in report["precisions"].values():
        assert 0.0 <= figures["recall@1"] <= figures["recall@5"] <= 1.0
        assert figures["recall@5"] == 1.0  # three paragraphs: the right one is always within five
        assert 1 / 3 <= figures["mrr"] <= 1.0
    assert report["precisions"]["fp32"]["top1_agreement_with_fp32"] == 1.0


def test_eval_refuses_bad_input(make_bundle, squad_file: Path, tmp_path: Path, capsys) -> None:
    qa_bundle = str(make_bundle("distilbert-qa-uncased"))
    assert main(["eval", "retrieval", qa_bundle, "--data", str(squad_file)]) == 2
    assert "feature-extraction bundle" in capsys.readouterr().err
    assert main(["eval", "squad", qa_bundle, "--data", str(squad_file), "--precision", "int8-static"]) == 2
    assert "no int8-static variant" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}))
    assert main(["eval", "squad", qa_bundle, "--data", str(bad)]) == 2
    assert "not SQuAD format" in capsys.readouterr().err
