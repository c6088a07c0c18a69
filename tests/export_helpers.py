"""Shared helpers for exporter tests: run a checkpoint in PyTorch and a bundle variant in ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QA = [
    ("Who was Jim Henson?", "Jim Henson was a nice puppet."),
    ("What is a good example of a question answering dataset?",
     "An example of a question answering dataset is the SQuAD dataset, which is entirely based on that task."),
    ("Where is the city?", "Paris is the capital and most populous city of France."),
]
TEXTS = [
    "A man is eating food.",
    "The girl is carrying a baby.",
    "Someone in a gorilla costume is playing a set of drums.",
    "Two men pushed carts through the woods while it rained.",
    "Hi",
]
MASKED = ["Paris is the {mask} of France.", "The {mask} jumped over the {mask} dog.", "Hello, I'm a {mask} model."]


def encode(checkpoint: Path, task: str) -> dict[str, np.ndarray]:
    """A padded batch of mixed lengths for ``task``, from the checkpoint's own tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    if task == "question-answering":
        enc = tok([q for q, _ in QA], [c for _, c in QA], padding=True, return_tensors="np")
    elif task == "fill-mask":
        enc = tok([t.replace("{mask}", tok.mask_token) for t in MASKED], padding=True, return_tensors="np")
    else:
        enc = tok(TEXTS, padding=True, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


def torch_outputs(checkpoint: Path, task: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch
    import transformers

    cls = {
        "question-answering": transformers.AutoModelForQuestionAnswering,
        "fill-mask": transformers.AutoModelForMaskedLM,
        "text-classification": transformers.AutoModelForSequenceClassification,
        "feature-extraction": transformers.AutoModel,
    }[task]
    model = cls.from_pretrained(str(checkpoint)).eval()
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def onnx_outputs(model_file: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
    return {o.name: v for o, v in zip(session.get_outputs(), session.run(None, feeds))}


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    w = mask[..., None].astype(np.float32)
    return (hidden * w).sum(1) / w.sum(1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
