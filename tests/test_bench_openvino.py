"""The OpenVINO and PyTorch bf16 benchmark peers run a tiny model end to end and answer like PyTorch fp32."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from distilrt.benchmarks import systems
from distilrt.benchmarks.models import BenchModel
from distilrt.benchmarks.workloads import qa_pair


@pytest.fixture(scope="module")
def qa_paths(make_checkpoint, make_bundle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Where the peers look: an optimum-style directory (plain model.onnx, tokenizer, config) and the checkpoint."""
    name = "distilbert-qa-uncased"
    bundle = make_bundle(name)
    plain = tmp_path_factory.mktemp("optimum")
    for file in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (bundle / file).is_file():
            shutil.copy(bundle / file, plain / file)
    shutil.copy(bundle / "onnx" / "model.onnx", plain / "model.onnx")
    return {"checkpoint": make_checkpoint(name), "optimum": plain, "bundle": bundle}


MODEL = BenchModel("tiny-qa", "question-answering", "standin:distilbert-base-uncased-distilled-squad", True)
PAIRS = [qa_pair(64), qa_pair(96, seed=3)]


def _answers(key: str, paths: dict[str, Path]) -> list[dict]:
    runner = systems.load(systems.SYSTEMS[key], MODEL, paths, threads=1)
    try:
        return runner.run(PAIRS, 2)
    finally:
        runner.close()


def _spans(answers: list[dict]) -> list[tuple[int, int]]:
    assert [set(a) for a in answers] == [{"score", "start", "end", "answer"}] * len(PAIRS)
    assert all(0.0 <= a["score"] <= 1.0 for a in answers)
    return [(a["start"], a["end"]) for a in answers]


def test_openvino_default_and_bf16_peers_answer_like_pytorch(qa_paths: dict[str, Path]) -> None:
    reference = _spans(_answers("torch-fp32", qa_paths))
    # fp32 (bf16 where the CPU has it) on the same graph: the same spans as PyTorch
    assert _spans(_answers("openvino-default", qa_paths)) == reference
    _spans(_answers("torch-bf16", qa_paths))  # a tiny random model's spans may flip in bf16; the row must run


@pytest.mark.slow
def test_openvino_int8_peer_is_quantised_once_and_runs(qa_paths: dict[str, Path]) -> None:
    _spans(_answers("openvino-int8", qa_paths))
    written = list((qa_paths["optimum"] / "openvino").glob("openvino_int8_nncf*.xml"))
    assert len(written) == 1 and written[0].with_suffix(".bin").is_file()
    stamp = written[0].stat().st_mtime_ns
    _spans(_answers("openvino-int8", qa_paths))
    assert written[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
