"""A bundle loads unchanged in optimum's ORTModelFor* classes and answers like PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import encode, torch_outputs


@pytest.mark.parametrize("name,cls_name,task", [
    ("distilbert-qa-uncased", "ORTModelForQuestionAnswering", "question-answering"),
    ("roberta-mlm", "ORTModelForMaskedLM", "fill-mask"),
    ("distilbert-classifier", "ORTModelForSequenceClassification", "text-classification"),
    ("distilbert-features-cased", "ORTModelForFeatureExtraction", "feature-extraction"),
])
@pytest.mark.parametrize("file", ["model.onnx", "model_fp16.onnx", "model_quantized.onnx"])
def test_bundle_loads_in_optimum(make_checkpoint, make_bundle, name: str, cls_name: str, task: str, file: str) -> None:
    import optimum.onnxruntime as ortm
    import torch

    bundle = make_bundle(name)
    model = getattr(ortm, cls_name).from_pretrained(bundle, subfolder="onnx", file_name=file)
    inputs = encode(make_checkpoint(name), task)
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    ref = torch_outputs(make_checkpoint(name), task, inputs)
    key = {"question-answering": "start_logits", "feature-extraction": "last_hidden_state"}.get(task, "logits")
    got = out[key].numpy() if hasattr(out[key], "numpy") else np.asarray(out[key])
    assert got.shape == ref[key].shape
    mask = inputs["attention_mask"].astype(bool)
    valid = (lambda a: a) if (key == "logits" and got.ndim == 2) else (lambda a: a[mask])
    tolerance = {"model.onnx": 1e-4, "model_fp16.onnx": 1e-2, "model_quantized.onnx": 0.1}[file]
    assert np.abs(valid(got) - valid(ref[key])).max() <= tolerance
