"""The real all-MiniLM-L6-v2 weights: hidden states of every variant against PyTorch on real sentences."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import cosine, mean_pool, onnx_outputs, torch_outputs

from distilrt.runtime.manifest import Manifest

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "A cheetah is running behind its prey.",
    "The new movie is awesome, and everyone in the theatre loved the soundtrack as well.",
    "Hello",
]


@pytest.fixture(scope="module")
def reference(minilm_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_checkpoint))
    inputs = {k: v.astype(np.int64) for k, v in tok(SENTENCES, padding=True, return_tensors="np").items()}
    return inputs, torch_outputs(minilm_checkpoint, "feature-extraction", inputs)


@pytest.mark.parametrize("file,min_cosine,max_abs", [
    ("onnx/model.onnx", 0.99999, 1e-4),
    ("onnx/model_fp16.onnx", 0.9999, 2e-2),
    # The accuracy policy keeps MiniLM's FFN down-projections and QKV in fp32, its most faithful level.
    ("onnx/model_quantized.onnx", 0.99, None),
])
def test_real_minilm_variants_against_pytorch(minilm_bundle, reference, file: str, min_cosine: float,
                                              max_abs: float | None) -> None:
    inputs, ref = reference
    got = onnx_outputs(minilm_bundle / file, inputs)["last_hidden_state"]
    mask = inputs["attention_mask"]
    cos = cosine(mean_pool(got, mask), mean_pool(ref["last_hidden_state"], mask))
    assert cos.min() >= min_cosine, cos
    if max_abs is not None:
        assert np.abs(got - ref["last_hidden_state"])[mask.astype(bool)].max() <= max_abs
    else:
        assert cos.mean() >= 0.995, cos


def test_real_minilm_manifest_records_pooling_and_int8_choice(minilm_bundle) -> None:
    manifest = Manifest.read(minilm_bundle)
    assert manifest.task == "feature-extraction"
    assert manifest.pooling == {"mode": "mean", "normalize": True, "source": "modules.json"}
    assert (minilm_bundle / "1_Pooling/config.json").is_file()
    int8 = manifest.variants["int8"]
    details = int8.details
    assert details["chosen"] in details["candidates"] and details["policy"] == "accuracy"
    # The ladder is judged on the evaluation set's targets; the fully quantised flash graph came first.
    assert details["target"] == {"cosine_mean": 0.9999, "cosine_min": 0.98, "retrieval_top1_agreement": 0.99}
    assert list(details["candidates"])[0] == "flash" and details["graph"] == "flash"
    agreement = int8.parity["agreement"]
    assert details["target_met"] == agreement["target_met"]
    chosen = details["candidates"][details["chosen"]]
    assert chosen["retrieval_top1_agreement"] == pytest.approx(agreement["retrieval_top1_agreement"])
    if details["target_met"]:  # the first level that reaches it, so no earlier one did
        assert all(not _meets(details["candidates"][tag], details["target"]) for tag in details["candidates"]
                   if tag != details["chosen"])
    else:  # none did: the most faithful of those tried is kept, not the fully quantised one by default
        assert not any(_meets(c, details["target"]) for c in details["candidates"].values())
        assert chosen["cosine_mean"] == max(c["cosine_mean"] for c in details["candidates"].values())
    assert int8.parity["embedding_cosine_min"] >= 0.98


def _meets(figures: dict, target: dict) -> bool:
    return all(figures[name] >= value for name, value in target.items())


def test_speed_policy_keeps_the_fully_quantised_graph(minilm_checkpoint, tmp_path) -> None:
    from distilrt.export import export_model

    result = export_model(str(minilm_checkpoint), tmp_path, precisions="int8", int8_policy="speed", name="fast")
    manifest = result.manifest
    details = manifest.variants["int8"].details
    assert details["policy"] == "speed" and details["preset"]["keep_fp32"] == []
    assert "Attention" in details["preset"]["operators"]
    # one graph quantised by the fixed rule, nothing timed, no fallback tried
    assert list(details["candidates"]) == ["flash"] and details["chosen"] == "flash"
    assert "selection_ms" not in details
    # without fp32 requested, no fp32 graphs are shipped
    assert set(manifest.variants) == {"int8"} and manifest.graphs == {}
