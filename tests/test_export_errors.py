"""Bad input gets a clear, typed error; nothing half-done looks done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distilrt.export import export_model
from distilrt.runtime.errors import (
    CheckpointError,
    HubUnreachableError,
    OutputExistsError,
    OutputNotWritableError,
    ParityError,
    UnknownNameError,
)
from distilrt.runtime.manifest import Manifest


def test_hub_id_without_network_says_how_to_pass_a_directory(tmp_path: Path) -> None:
    with pytest.raises(HubUnreachableError, match="hub is unreachable.*pass DIR"):
        export_model("distilbert-base-uncased-distilled-squad", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        export_model(str(tmp_path / "ckpt"), tmp_path / "out")


def test_missing_local_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_model(str(tmp_path / "nope"), tmp_path / "out")


def test_unsupported_architecture_lists_supported(tmp_path: Path) -> None:
    ckpt = tmp_path / "gpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(CheckpointError, match="gpt2.*supported: distilbert, bert, roberta"):
        export_model(str(ckpt), tmp_path / "out")


def test_unknown_task(make_checkpoint, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown task 'summarization'; known: question-answering"):
        export_model(str(make_checkpoint("distilbert-qa-uncased")), tmp_path, task="summarization")


@pytest.mark.parametrize("precision", ["int4", "fp32,bf16", ""])
def test_unknown_precision(make_checkpoint, tmp_path: Path, precision: str) -> None:
    with pytest.raises(UnknownNameError, match="precision"):
        export_model(str(make_checkpoint("distilbert-qa-uncased")), tmp_path, precisions=precision)
    assert list(tmp_path.iterdir()) == []


def test_unknown_int8_policy(make_checkpoint, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown int8 policy 'fastest'; known: accuracy, speed"):
        export_model(str(make_checkpoint("distilbert-qa-uncased")), tmp_path, int8_policy="fastest")


def test_existing_output_is_refused_without_force(make_checkpoint, make_bundle, tmp_path: Path) -> None:
    checkpoint = make_checkpoint("distilbert-qa-uncased")
    target = tmp_path / checkpoint.name
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        export_model(str(checkpoint), tmp_path)
    # --force does not touch a directory distilrt did not write
    with pytest.raises(OutputExistsError, match="not a distilrt bundle"):
        export_model(str(checkpoint), tmp_path, force=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_force_replaces_a_bundle_and_keeps_foreign_files(make_checkpoint, tmp_path: Path) -> None:
    checkpoint = make_checkpoint("distilbert-qa-uncased")
    first = export_model(str(checkpoint), tmp_path, precisions="fp32,int8")
    (first.path / "notes.txt").write_text("mine")
    second = export_model(str(checkpoint), tmp_path, precisions="fp16", force=True)
    assert second.path == first.path
    assert set(Manifest.read(second.path).variants) == {"fp16"}
    assert not (second.path / "onnx/model.onnx").exists()  # the old variants are gone
    assert not (second.path / "onnx/model_quantized.onnx").exists()
    assert (second.path / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.name]


def test_unwritable_output(make_checkpoint, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritableError, match="cannot write to"):
        export_model(str(make_checkpoint("distilbert-qa-uncased")), blocker / "out")


def test_parity_failure_names_output_and_figure_and_writes_nothing(make_checkpoint, tmp_path: Path, monkeypatch) -> None:
    import distilrt.export.validate as validate

    monkeypatch.setattr(validate, "FP32_TOLERANCE", 0.0)
    with pytest.raises(ParityError, match=r"fp32 output '(start|end)_logits' differs from PyTorch by") as info:
        export_model(str(make_checkpoint("distilbert-qa-uncased")), tmp_path, precisions="fp32")
    assert info.value.variant == "fp32" and info.value.value > 0.0
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging directory


def test_task_from_config_and_override(make_checkpoint, tmp_path: Path) -> None:
    ckpt = make_checkpoint("distilbert-mlm-uncased")
    result = export_model(str(ckpt), tmp_path, precisions="fp32", task="feature-extraction", name="mlm-features")
    assert result.manifest.task == "feature-extraction"
    assert result.manifest.outputs == ("last_hidden_state",)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distilrt.runtime.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_help_documents_every_flag() -> None:
    out = _cli("export", "--help")
    assert out.returncode == 0
    for flag in ("--output", "--precision", "--task", "--opset", "--force", "--revision", "--name", "MODEL"):
        assert flag in out.stdout


def test_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    out = _cli("export", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "error: checkpoint directory" in out.stderr and "Traceback" not in out.stderr


def test_cli_exports_and_prints_the_summary(make_checkpoint, tmp_path: Path) -> None:
    out = _cli("export", str(make_checkpoint("roberta-mlm")), "--output", str(tmp_path), "--precision", "fp32,int8")
    assert out.returncode == 0, out.stderr
    assert "validate" in out.stderr  # progress per step
    header, rule, *rows = out.stdout.strip().splitlines()
    assert header.split()[:4] == ["bundle", "task", "variant", "size"]
    assert [row.split()[2] for row in rows] == ["fp32", "fp32-fused", "fp32-flash", "int8"]
