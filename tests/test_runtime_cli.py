"""The runtime commands: qa, fill-mask, embed, classify (in-process, through distilrt.runtime.cli.main)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from distilrt.runtime import pipeline
from distilrt.runtime.cli import main

CONTEXT = "Jim Henson was a nice puppet maker who created The Muppets."


def run_cli(capsys, *argv: str) -> tuple[int, list, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return code, lines, captured.err


def test_qa_command(make_bundle, capsys, tmp_path: Path) -> None:
    bundle = str(make_bundle("distilbert-qa-uncased"))
    expected = pipeline("question-answering", model=bundle, provider="cpu")(question="Who was he?", context=CONTEXT)
    code, lines, _ = run_cli(capsys, "qa", bundle, "--question", "Who was he?", "--context", CONTEXT)
    assert code == 0 and lines == [expected]
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT, encoding="utf-8")
    code, lines, _ = run_cli(capsys, "qa", bundle, "-q", "Who was he?", "--context-file", str(context_file), "--top-k", "2")
    assert code == 0 and isinstance(lines[0], list) and lines[0][0] == expected
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": i, "question": q, "context": CONTEXT})
                               for i, q in enumerate(["Who was he?", "What did he create?"])) + "\n")
    code, lines, _ = run_cli(capsys, "qa", bundle, "--jsonl", str(jsonl))
    assert code == 0 and [line["id"] for line in lines] == [0, 1]
    # batched with another input: same span; the int8 score moves slightly with the batch, because
    # dynamic quantisation scales activations per batch
    got = lines[0]["answer"]
    assert (got["answer"], got["start"], got["end"]) == (expected["answer"], expected["start"], expected["end"])
    assert got["score"] == pytest.approx(expected["score"], rel=0.05)
    # one sequence per batch on two streams: each answer as the single-input call gives it
    code, streamed, _ = run_cli(capsys, "qa", bundle, "--jsonl", str(jsonl), "--streams", "2", "--batch-size", "1")
    assert code == 0 and [line["id"] for line in streamed] == [0, 1]
    assert streamed[0]["answer"]["answer"] == expected["answer"]
    assert streamed[0]["answer"]["score"] == pytest.approx(expected["score"], rel=1e-5)


def test_qa_command_reads_stdin_and_reports_errors(make_bundle, capsys, monkeypatch) -> None:
    bundle = str(make_bundle("distilbert-qa-uncased"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"question": "Who?", "context": CONTEXT}) + "\n"))
    code, lines, _ = run_cli(capsys, "qa", bundle, "--jsonl", "-")
    assert code == 0 and len(lines) == 1 and "answer" in lines[0]
    code, _, err = run_cli(capsys, "qa", bundle, "--question", " ", "--context", CONTEXT)
    assert code == 2 and "question is empty" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"question": "Who?"}\n'))
    code, _, err = run_cli(capsys, "qa", bundle, "--jsonl", "-")
    assert code == 2 and "line 1" in err and "'context'" in err


def test_fill_mask_embed_classify_commands(make_bundle, capsys, tmp_path: Path) -> None:
    mlm = str(make_bundle("distilbert-mlm-uncased"))
    code, lines, _ = run_cli(capsys, "fill-mask", mlm, "Paris is the [MASK] of France.", "The [MASK] [MASK].", "--top-k", "2")
    assert code == 0 and len(lines) == 2 and len(lines[0]) == 2 and len(lines[1]) == 2 and isinstance(lines[1][0], list)
    code, _, err = run_cli(capsys, "fill-mask", mlm, "no mask at all")
    assert code == 2 and "'[MASK]'" in err

    features = str(make_bundle("distilbert-features-cased"))
    code, lines, _ = run_cli(capsys, "embed", features, "A man is eating food.", "Hi", "--pooling", "mean", "--normalize")
    assert code == 0 and len(lines) == 2 and len(lines[0]) == 32
    assert abs(sum(v * v for v in lines[0]) - 1.0) < 1e-5

    classifier = str(make_bundle("distilbert-classifier"))
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text(json.dumps({"text": "I loved it."}) + "\n" + json.dumps({"text": "Bad.", "text_pair": "Awful."}) + "\n")
    code, lines, _ = run_cli(capsys, "classify", classifier, "--jsonl", str(jsonl), "--all")
    assert code == 0 and [len(line["labels"]) for line in lines] == [2, 2]
    code, lines, _ = run_cli(capsys, "classify", classifier, "I loved it.")
    assert code == 0 and set(lines[0]) == {"label", "score"}


def test_wrong_task_for_bundle(make_bundle, capsys) -> None:
    code, _, err = run_cli(capsys, "fill-mask", str(make_bundle("distilbert-qa-uncased")), "a [MASK]")
    assert code == 2 and "exported for question-answering" in err


@pytest.mark.parametrize("command", ["qa", "fill-mask", "embed", "classify"])
def test_help_lists_options(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--precision" in capsys.readouterr().out
