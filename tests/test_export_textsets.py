"""The built-in calibration and evaluation sets, and reading the user's calibration file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distilrt.export import calibration, textset
from distilrt.runtime.errors import InputError


def test_evaluation_and_calibration_sets_share_no_text() -> None:
    eval_passages = {text for _, text, _ in textset.passages("evaluation")}
    cal_passages = {text for _, text, _ in textset.passages("calibration")}
    assert eval_passages and cal_passages and not eval_passages & cal_passages
    for task in ("question-answering", "fill-mask", "text-classification", "feature-extraction"):
        examples = calibration.builtin(task).examples
        assert len(examples) == textset.DEFAULT_SIZE
        for example in examples:
            text = example.get("context") or example["text"]
            assert not any(p in text for p in eval_passages), "calibration text contains an evaluation passage"


def test_evaluation_items_are_many_and_well_formed() -> None:
    qa = textset.qa_items("evaluation")
    assert len(qa) >= 200
    for item in qa:
        assert item.context[item.answer_start:item.answer_start + len(item.answer)] == item.answer
    lengths = sorted(len(item.context.split()) for item in qa)
    assert lengths[0] < 80 and lengths[-1] > 400  # a passage alone up to eight of them (past 512 tokens)
    masked = textset.masked_texts("evaluation")
    assert len(masked) >= 200 and all(textset.MASK in text for text in masked)
    plain = textset.plain_texts("evaluation")
    assert len(plain) >= 200 and min(len(t.split()) for t in plain) <= 2
    retrieval = textset.retrieval_set("evaluation")
    assert len(retrieval.queries) >= 200 and len(retrieval.paragraphs) == len(textset.passages("evaluation"))
    assert textset.qa_items("evaluation") == qa  # deterministic


def test_calibration_file_json_lines_and_plain_text(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps({"question": f"q{i}?", "context": f"context {i}"}) for i in range(3)) + "\n\n")
    read = calibration.read_file(qa, "question-answering")
    assert read.describe() == {"source": str(qa), "count": 3}
    assert read.examples[1] == {"question": "q1?", "context": "context 1"}
    plain = tmp_path / "plain.txt"
    plain.write_text("first line\n\nsecond line\n")
    assert [e["text"] for e in calibration.read_file(plain, "fill-mask").examples] == ["first line", "second line"]
    lines = tmp_path / "texts.jsonl"
    lines.write_text('{"text": "a sentence"}\n')
    assert calibration.read_file(lines, "feature-extraction").examples == ({"text": "a sentence"},)


@pytest.mark.parametrize(("content", "task", "message"), [
    ("", "fill-mask", "holds no examples"),
    ("just text\n", "question-answering", "needs JSON Lines objects"),
    ('{"question": "q"}\n', "question-answering", "needs JSON Lines objects"),
    ('{"text": 3}\n', "feature-extraction", "expected an object with a \"text\" string"),
    ('{"text": "unterminated\n', "feature-extraction", "is not valid JSON"),
])
def test_calibration_file_errors_name_the_line(tmp_path: Path, content: str, task: str, message: str) -> None:
    path = tmp_path / "data.txt"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        calibration.read_file(path, task)
    with pytest.raises(InputError, match="cannot read calibration data"):
        calibration.read_file(tmp_path / "missing.txt", task)
