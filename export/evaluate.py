"""Agreement of each variant with PyTorch fp32 on the built-in evaluation set.

The evaluation set (:mod:`distilrt.export.textset`, never used for calibration) holds at least 200
items of the task's kind, at realistic lengths up to the model's maximum.  Figures per task:

- question-answering: top-1 answer span (best start <= end within the context, as the pipeline picks it);
- fill-mask: top-1 token at every mask;
- text-classification: top-1 class;
- feature-extraction: cosine of pooled embeddings (mean and min) and top-1 retrieval agreement (the
  paragraph each query's embedding is nearest to).

Items run in length-sorted batches so padding stays small and the cost bounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import textset
from .load import Checkpoint

logger = logging.getLogger(__name__)

BATCH_SIZE = 16
MAX_ANSWER_TOKENS = 30
#: What the default (accuracy) policy asks of every reduced-precision variant.
TARGETS: dict[str, dict[str, float]] = {
    "question-answering": {"span_agreement": 0.99},
    "fill-mask": {"token_agreement": 0.99},
    "text-classification": {"class_agreement": 0.99},
    # Retrieval on real text is full of near-ties that the 16 built-in paragraphs are not: there, keeping
    # the top-1 of >= 99 % of queries took a mean cosine of about 0.9999 (all-MiniLM-L6-v2, 387 queries
    # from CPython's reference prose; mean 0.9998 kept 97 %), so that is the bar, not the 0.995 that a
    # variant changing 1 top-1 in 20 there still clears.
    "feature-extraction": {"cosine_mean": 0.9999, "cosine_min": 0.98, "retrieval_top1_agreement": 0.99},
}


@dataclass
class EvalSet:
    """Tokenised evaluation items for one task, and the PyTorch fp32 outputs they are judged against."""

    task: str
    encodings: list[dict[str, np.ndarray]]  # one unpadded row per item
    extra: list[Any]  # QA: context token mask; fill-mask: mask positions
    n_queries: int = 0  # feature-extraction: items [0, n_queries) are queries, then paragraphs, then texts
    n_paragraphs: int = 0
    pad_id: int = 0
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.encodings)


def build(checkpoint: Checkpoint, *, size: int = textset.DEFAULT_SIZE) -> EvalSet:
    """Tokenise the evaluation set for the checkpoint's task and compute PyTorch's answers on it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path))
    max_len = checkpoint.max_sequence_length
    task = checkpoint.task
    encodings: list[dict[str, np.ndarray]] = []
    extra: list[Any] = []
    n_queries = n_paragraphs = 0
    if task == "question-answering":
        for item in textset.qa_items("evaluation", size=size):
            enc = tokenizer(item.question, item.context, truncation="only_second", max_length=max_len)
            encodings.append({k: np.asarray(v, np.int64) for k, v in enc.items()})
            extra.append(np.array([s == 1 for s in enc.sequence_ids()], bool))
    else:
        if task == "fill-mask":
            texts = [t.replace(textset.MASK, tokenizer.mask_token) for t in textset.masked_texts("evaluation", size=size)]
        elif task == "feature-extraction":
            retrieval = textset.retrieval_set("evaluation", size=size)
            n_queries, n_paragraphs = len(retrieval.queries), len(retrieval.paragraphs)
            texts = [*retrieval.queries, *retrieval.paragraphs]  # cosines are measured on both
        else:
            texts = textset.plain_texts("evaluation", size=size)
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_len)
            encodings.append({k: np.asarray(v, np.int64) for k, v in enc.items()})
            if task == "fill-mask":
                extra.append(np.flatnonzero(encodings[-1]["input_ids"] == tokenizer.mask_token_id))
    evalset = EvalSet(task, encodings, extra, n_queries, n_paragraphs, tokenizer.pad_token_id or 0)
    evalset.reference = _decisions(evalset, _run_torch(checkpoint, evalset))
    return evalset


def _batches(evalset: EvalSet, names: list[str]) -> list[tuple[list[int], dict[str, np.ndarray]]]:
    order = sorted(range(evalset.size), key=lambda i: len(evalset.encodings[i]["input_ids"]))
    out = []
    for start in range(0, len(order), BATCH_SIZE):
        rows = order[start:start + BATCH_SIZE]
        width = max(len(evalset.encodings[i]["input_ids"]) for i in rows)
        feeds = {}
        for name in names:
            array = np.full((len(rows), width), evalset.pad_id if name == "input_ids" else 0, np.int64)
            for r, i in enumerate(rows):
                value = evalset.encodings[i].get(name)
                if value is None and name == "token_type_ids":
                    value = np.zeros_like(evalset.encodings[i]["input_ids"])
                array[r, :len(value)] = value
            feeds[name] = array
        out.append((rows, feeds))
    return out


def _collect(evalset: EvalSet, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
             names: list[str]) -> list[dict[str, np.ndarray]]:
    """Per item, each output with padding cut off (per-token outputs) or whole (per-sequence)."""
    results: list[dict[str, np.ndarray]] = [{} for _ in range(evalset.size)]
    for rows, feeds in _batches(evalset, names):
        outputs = run(feeds)
        for r, i in enumerate(rows):
            length = len(evalset.encodings[i]["input_ids"])
            for name, value in outputs.items():
                results[i][name] = value[r, :length] if value.ndim >= 2 and value.shape[1] == feeds["input_ids"].shape[1] \
                    else value[r]
    return results


def _run_torch(checkpoint: Checkpoint, evalset: EvalSet) -> list[dict[str, np.ndarray]]:
    import torch

    from .validate import _load_torch_model

    model = _load_torch_model(checkpoint)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in evalset.encodings[0]]
    keep = {"question-answering": ("start_logits", "end_logits"), "feature-extraction": ("last_hidden_state",)}.get(
        checkpoint.task, ("logits",))

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        return {k: out[k].float().numpy() for k in keep}

    return _collect(evalset, run, names)


def _run_onnx(path: Path, evalset: EvalSet) -> list[dict[str, np.ndarray]]:
    from distilrt.runtime.engines.onnxruntime import create_session

    session = create_session(path)  # the CPU session the runtime builds
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) for k, v in zip(outputs, session.run(None, feeds))}

    return _collect(evalset, run, names)


def _pool(hidden: np.ndarray) -> np.ndarray:
    return hidden.mean(0)  # rows are unpadded: a plain mean is masked mean pooling


def _decisions(evalset: EvalSet, outputs: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """What a user sees from these outputs: spans, tokens, classes, or embeddings."""
    task = evalset.task
    if task == "question-answering":
        spans = []
        for out, context in zip(outputs, evalset.extra):
            spans.append(best_span(out["start_logits"], out["end_logits"], context))
        return {"spans": spans}
    if task == "fill-mask":
        return {"tokens": [out["logits"][positions].argmax(-1) for out, positions in zip(outputs, evalset.extra)]}
    if task == "text-classification":
        return {"classes": np.array([int(out["logits"].argmax()) for out in outputs])}
    embeddings = np.stack([_pool(out["last_hidden_state"]) for out in outputs])
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    q, p = evalset.n_queries, evalset.n_paragraphs
    return {"embeddings": embeddings, "retrieved": (embeddings[:q] @ embeddings[q:q + p].T).argmax(1)}


def best_span(start: np.ndarray, end: np.ndarray, context: np.ndarray) -> tuple[int, int]:
    """The (start, end) token pair with the highest start + end logit, start <= end < start + 30, in the context."""
    scores = start[:, None] + end[None, :]
    n = len(start)
    index = np.arange(n)
    valid = (index[None, :] >= index[:, None]) & (index[None, :] < index[:, None] + MAX_ANSWER_TOKENS)
    valid &= context[:, None] & context[None, :]
    scores = np.where(valid, scores, -np.inf)
    flat = int(scores.argmax())
    return flat // n, flat % n


def measure(path: Path, evalset: EvalSet) -> dict[str, Any]:
    """Agreement figures of the ONNX file at ``path`` with PyTorch fp32, and whether they meet the targets."""
    got = _decisions(evalset, _run_onnx(path, evalset))
    ref = evalset.reference
    task = evalset.task
    figures: dict[str, Any] = {"reference": "pytorch-fp32", "set": "built-in evaluation", "items": evalset.size}
    if task == "question-answering":
        figures["span_agreement"] = float(np.mean([a == b for a, b in zip(ref["spans"], got["spans"])]))
    elif task == "fill-mask":
        same = np.concatenate([a == b for a, b in zip(ref["tokens"], got["tokens"])])
        figures["token_agreement"] = float(same.mean())
        figures["masks"] = int(same.size)
    elif task == "text-classification":
        figures["class_agreement"] = float((ref["classes"] == got["classes"]).mean())
    else:
        cosines = (ref["embeddings"] * got["embeddings"]).sum(1)
        figures["cosine_mean"] = float(cosines.mean())
        figures["cosine_min"] = float(cosines.min())
        figures["retrieval_top1_agreement"] = float((ref["retrieved"] == got["retrieved"]).mean())
        figures["queries"] = evalset.n_queries
        figures["paragraphs"] = evalset.n_paragraphs
    targets = TARGETS[task]
    figures["target"] = dict(targets)
    figures["missed"] = [name for name, bound in targets.items() if figures[name] < bound]
    figures["target_met"] = not figures["missed"]
    return figures


def fidelity(figures: dict[str, Any]) -> tuple[bool, float, float]:
    """Sort key for :func:`measure` figures, larger is better: target met, then smaller shortfall, then
    the mean figure."""
    values = [figures[name] for name in figures["target"]]
    return bool(figures["target_met"]), -shortfall(figures), float(np.mean(values))


def shortfall(figures: dict[str, Any]) -> float:
    """How far figures fall below their targets (0 when met): the number fallbacks try to bring down."""
    return float(sum(max(0.0, bound - figures[name]) for name, bound in figures["target"].items()))


def summary(figures: dict[str, Any]) -> str:
    """One line for the export log: each targeted figure, and whether the target is met."""
    parts = ", ".join(f"{name} {figures[name]:.2%}" if "agreement" in name else f"{name} {figures[name]:.4f}"
                      for name in figures["target"])
    verdict = "meets target" if figures["target_met"] else f"MISSES target ({', '.join(figures['missed'])})"
    return f"evaluation set ({figures['items']} items): {parts}; {verdict}"
