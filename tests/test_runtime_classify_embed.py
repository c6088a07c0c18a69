"""text-classification and feature-extraction through the runtime vs transformers / sentence-transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distilrt.runtime import InputError, pipeline
from runtime_fixtures import assert_ranked_apart, close, reference_pipeline, task_pair  # noqa: F401  (fixture)

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.", "Hi",
             "Paris is the capital of France, and it is known for its museums, cafés and long history.",
             "ONNX Runtime runs the exported graph on CPU, CUDA or TensorRT."]


def assert_same_labels(ours: list[dict], reference: list[dict], what: str) -> None:
    assert [o["label"] for o in ours] == [r["label"] for r in reference], what
    assert all(close(o["score"], r["score"]) for o, r in zip(ours, reference)), f"{what}: {ours} vs {reference}"


def test_classifier_matches_transformers(task_pair) -> None:
    ours, ref = task_pair("text-classification", "distilbert-classifier", batch_size=2)
    results = ours(SENTENCES, top_k=None)
    for text, result in zip(SENTENCES, results):
        reference = ref(text, top_k=None)
        assert_ranked_apart([r["score"] for r in reference], text)
        assert_same_labels(result, reference, text)
        [best] = ours(text)  # a one-element list for one string, as transformers gives
        assert isinstance(best, dict) and best["label"] == reference[0]["label"]
        assert close(best["score"], reference[0]["score"])
        assert_same_labels(ours(text, function_to_apply="sigmoid", top_k=2),
                           ref(text, function_to_apply="sigmoid", top_k=2), text)
    assert {r["label"] for r in results[0]} == {"NEGATIVE", "POSITIVE"}
    assert abs(sum(r["score"] for r in results[0]) - 1.0) < 1e-6  # softmax for single-label


def test_multi_label_config_uses_sigmoid(make_checkpoint, make_bundle, tmp_path: Path) -> None:
    checkpoint, bundle = tmp_path / "ckpt", tmp_path / "bundle"
    shutil.copytree(make_checkpoint("distilbert-classifier"), checkpoint)
    shutil.copytree(make_bundle("distilbert-classifier"), bundle)
    for directory in (checkpoint, bundle):
        config = json.loads((directory / "config.json").read_text())
        config["problem_type"] = "multi_label_classification"
        (directory / "config.json").write_text(json.dumps(config))
    from distilrt.runtime.manifest import Manifest, seal

    seal(Manifest.read(bundle), bundle).write(bundle)  # the edited config, listed with its new digest
    ours = pipeline("text-classification", model=bundle, precision="fp32", provider="cpu")
    assert ours.default_function == "sigmoid"
    from transformers import pipeline as hf_pipeline

    ref = hf_pipeline("text-classification", model=str(checkpoint), device=-1)
    for text in SENTENCES[:3]:
        result = ours(text, top_k=None)
        assert_same_labels(result, ref(text, top_k=None), text)
        assert abs(sum(r["score"] for r in result) - 1.0) > 1e-3  # independent sigmoids, not a softmax


def test_classifier_pairs_and_bad_input(task_pair) -> None:
    ours, ref = task_pair("text-classification", "distilbert-classifier")
    pair = {"text": "A man is eating food.", "text_pair": "Someone eats."}
    assert_same_labels([ours(pair)], ref(pair, top_k=1), "pair")
    with pytest.raises(InputError, match="empty"):
        ours("   ")
    with pytest.raises(InputError, match="must be a string"):
        ours(["fine", 3])
    with pytest.raises(InputError, match="truncation=True"):
        ours("word " * 600)
    assert isinstance(ours("word " * 600, truncation=True)[0], dict)
    with pytest.raises(InputError, match="top_k"):
        ours("fine", top_k=0)
    with pytest.raises(InputError, match="function_to_apply"):
        ours("fine", function_to_apply="relu")


def test_token_features_match_transformers(task_pair) -> None:
    ours, ref = task_pair("feature-extraction", "distilbert-features-cased", batch_size=2)
    states = ours(SENTENCES, pooling="none", return_tensors=True)
    assert isinstance(states, list) and len(states) == len(SENTENCES)
    for text, state in zip(SENTENCES, states):
        reference = np.asarray(ref(text))[0]
        assert state.dtype == np.float32 and state.shape == (1, *reference.shape)
        state = state[0]
        np.testing.assert_allclose(state, reference, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours(text, pooling="mean"), reference.mean(0), atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours(text, pooling="cls"), reference[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours(text, pooling="max"), reference.max(0), atol=1e-4, rtol=0)
    single = ours(SENTENCES[0], pooling="auto", return_tensors=True)  # no sentence-transformers pooling: none
    assert single.ndim == 3
    pooled = ours(SENTENCES, pooling="mean", normalize=True, return_tensors=True)
    assert pooled.shape == (len(SENTENCES), single.shape[2])
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)


def test_feature_bad_input(task_pair) -> None:
    ours, _ = task_pair("feature-extraction", "distilbert-features-cased")
    with pytest.raises(InputError, match="pooling"):
        ours("text", pooling="sum")
    with pytest.raises(InputError, match="normalize"):
        ours("text", pooling="none", normalize=True)
    with pytest.raises(InputError, match="empty"):
        ours(["ok", ""])
    with pytest.raises(InputError, match="truncation=True"):
        ours("word " * 600)


@pytest.fixture(scope="module")
def minilm(minilm_bundle: Path, minilm_checkpoint: Path) -> tuple[Any, Any]:
    from sentence_transformers import SentenceTransformer

    return (pipeline(model=minilm_bundle, precision="fp32", provider="cpu", batch_size=4),
            SentenceTransformer(str(minilm_checkpoint), device="cpu"))


def test_minilm_matches_sentence_transformers(minilm) -> None:
    ours, reference_model = minilm
    assert ours.task == "feature-extraction" and ours.manifest.pooling["mode"] == "mean"
    long_text = " ".join(SENTENCES) * 12  # past sentence-transformers' 256-token limit
    texts = [*SENTENCES, long_text, "Ünïcödé — ok? 東京 🙂"]
    ours_vectors = ours.embed(texts)
    reference = reference_model.encode(texts, convert_to_numpy=True)
    assert ours_vectors.shape == reference.shape == (len(texts), 384)
    cosine = (ours_vectors * reference).sum(1) / (np.linalg.norm(ours_vectors, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(ours_vectors, axis=1), 1.0, atol=1e-5)  # Normalize module honoured
    assert np.allclose(ours.embed(texts[0]), ours_vectors[0], atol=1e-6)
    assert np.allclose(ours(texts, pooling="auto", return_tensors=True), ours_vectors, atol=1e-6)
