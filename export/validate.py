"""Parity of each exported variant against the PyTorch checkpoint it came from.

Batches include padding and several lengths up to the model's maximum.  Per-token outputs are
compared only where ``attention_mask`` is 1: what a padded position holds is not part of the contract.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilrt.runtime.errors import ParityError

from .load import Checkpoint

logger = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-4
# fp16 keeps ~3 decimal digits: 1e-2 on logits; hidden states are larger in magnitude, so their bound
# scales with them and is checked together with cosine similarity.
FP16_TOLERANCE = {"logits": 1e-2, "start_logits": 1e-2, "end_logits": 1e-2, "last_hidden_state": 5e-2}

QA_PAIRS: tuple[tuple[str, str], ...] = (
    ("Who was Jim Henson?", "Jim Henson was a nice puppet."),
    ("What is a good example of a question answering dataset?",
     "Extractive Question Answering is the task of extracting an answer from a text given a question. "
     "An example of a question answering dataset is the SQuAD dataset, which is entirely based on that task."),
    ("Where do water droplets collide with ice crystals?",
     "In meteorology, precipitation is any product of the condensation of atmospheric water vapor that falls "
     "under gravity. Precipitation forms as smaller droplets coalesce via collision with other rain drops or ice "
     "crystals within a cloud."),
    ("How many layers does the model have?", "The distilled model keeps six of the twelve layers."),
    ("When was the bridge opened?", "The bridge opened to traffic in 1937 after four years of construction, and "
     "for decades it was the longest suspension span in the world."),
    ("What colour is the sky?", "Blue."),
)
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "ONNX Runtime runs the exported graph.",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "Paris is the capital of France, and it is known for its museums, cafés and long history.",
    "Hi",
)
MASK_TEMPLATES: tuple[str, ...] = (
    "Paris is the {mask} of France.",
    "The man worked as a {mask}.",
    "Hello, I'm a {mask} model.",
    "The {mask} jumped over the {mask} dog.",
    "She drank a cup of {mask} before the meeting started this morning.",
)


@dataclass(frozen=True)
class ReferenceBatch:
    """Inputs (numpy, as fed to ONNX) and the PyTorch outputs for them."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    kind: str  # "text" or "max-length"


def _load_torch_model(checkpoint: Checkpoint):  # torch types stay out of signatures
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
    )

    cls = {
        "question-answering": AutoModelForQuestionAnswering,
        "fill-mask": AutoModelForMaskedLM,
        "text-classification": AutoModelForSequenceClassification,
        "feature-extraction": AutoModel,
    }[checkpoint.task]
    return cls.from_pretrained(str(checkpoint.path), attn_implementation="eager").eval()


def _text_batch(checkpoint: Checkpoint, tokenizer) -> dict[str, np.ndarray]:
    if checkpoint.task == "question-answering":
        questions, contexts = zip(*QA_PAIRS)
        enc = tokenizer(list(questions), list(contexts), padding=True, truncation="only_second",
                        max_length=checkpoint.max_sequence_length, return_tensors="np")
    elif checkpoint.task == "fill-mask":
        texts = [t.replace("{mask}", tokenizer.mask_token) for t in MASK_TEMPLATES]
        enc = tokenizer(texts, padding=True, return_tensors="np")
    else:
        enc = tokenizer(list(SENTENCES), padding=True, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


def _max_length_batch(checkpoint: Checkpoint, tokenizer) -> dict[str, np.ndarray]:
    """Two rows at the model's maximum length, the second half padding: the longest shape served."""
    length = checkpoint.max_sequence_length
    rng = np.random.default_rng(1234)
    special = set(tokenizer.all_special_ids)
    pool = np.array([i for i in range(min(len(tokenizer), 30000)) if i not in special], dtype=np.int64)
    ids = rng.choice(pool, size=(2, length))
    ids[:, 0] = tokenizer.cls_token_id
    ids[:, -1] = tokenizer.sep_token_id
    mask = np.ones_like(ids)
    half = length // 2
    ids[1, half - 1] = tokenizer.sep_token_id
    ids[1, half:] = tokenizer.pad_token_id
    mask[1, half:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in tokenizer.model_input_names:
        batch["token_type_ids"] = np.zeros_like(ids)
    return batch


def reference_batches(checkpoint: Checkpoint) -> list[ReferenceBatch]:
    """Run the PyTorch model on the fixed text set and on a max-length padded batch."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path))
    model = _load_torch_model(checkpoint)
    batches = []
    for kind, inputs in (("text", _text_batch(checkpoint, tokenizer)), ("max-length", _max_length_batch(checkpoint, tokenizer))):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        outputs = {k: v.detach().float().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
        batches.append(ReferenceBatch(inputs, outputs, kind))
    return batches


def _run(model_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from distilrt.runtime.engines.onnxruntime import create_session

    session = create_session(model_path)  # the CPU session the runtime builds (same left-out rewrites)
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ParityError(f"{model_path.name} wants inputs {missing} the tokenizer does not produce",
                          variant=model_path.name, output=",".join(missing), value=float("nan"), tolerance=0.0)
    values = session.run(None, {n: inputs[n] for n in names})
    return {o.name: v.astype(np.float32) for o, v in zip(session.get_outputs(), values)}


def _valid(name: str, array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep positions the model attends to; per-sequence outputs are kept whole."""
    if name == "logits" and array.ndim == 2:  # sequence classification
        return array
    return array[mask.astype(bool)]


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def _agreement(task: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
               mask_token_id: int | None) -> tuple[int, int]:
    """(agreeing, total) top-1 decisions: QA start/end, fill-mask token, class."""
    attn = inputs["attention_mask"].astype(bool)
    if task == "question-answering":
        agree = total = 0
        for row in range(attn.shape[0]):
            for name in ("start_logits", "end_logits"):
                r = np.where(attn[row], ref[name][row], -np.inf)
                g = np.where(attn[row], got[name][row], -np.inf)
                agree += int(r.argmax() == g.argmax())
                total += 1
        return agree, total
    if task == "fill-mask":
        positions = inputs["input_ids"] == mask_token_id
        r = ref["logits"][positions].argmax(-1)
        g = got["logits"][positions].argmax(-1)
        return int((r == g).sum()), int(r.size)
    if task == "text-classification":
        r, g = ref["logits"].argmax(-1), got["logits"].argmax(-1)
        return int((r == g).sum()), int(r.size)
    return 0, 0


#: The outputs each task's variant must have; other PyTorch outputs (e.g. BERT's pooler) are not exported.
REQUIRED_OUTPUTS = {
    "question-answering": ("start_logits", "end_logits"),
    "fill-mask": ("logits",),
    "text-classification": ("logits",),
    "feature-extraction": ("last_hidden_state",),
}


def check_variant(precision: str, model_path: Path, checkpoint: Checkpoint, batches: list[ReferenceBatch],
                  *, mask_token_id: int | None = None) -> dict[str, Any]:
    """Measure one variant against PyTorch; raise :class:`ParityError` for fp32/fp16 outside tolerance.

    Returns the figures that go into the manifest.
    """
    max_diff: dict[str, float] = {}
    agree = total = 0
    cosines: dict[str, np.ndarray] = {}
    for batch in batches:
        got = _run(model_path, batch.inputs)
        mask = batch.inputs["attention_mask"]
        for name in REQUIRED_OUTPUTS[checkpoint.task]:
            ref = batch.outputs[name]
            if name not in got:
                raise ParityError(f"{precision} variant has no output {name!r} (it has {sorted(got)})",
                                  variant=precision, output=name, value=float("nan"), tolerance=0.0)
            if got[name].shape != ref.shape:
                raise ParityError(f"{precision} output {name!r} has shape {got[name].shape}, PyTorch {ref.shape}",
                                  variant=precision, output=name, value=float("nan"), tolerance=0.0)
            if not np.isfinite(got[name]).all():
                raise ParityError(f"{precision} output {name!r} holds NaN or inf on the {batch.kind} batch",
                                  variant=precision, output=name, value=float("nan"), tolerance=0.0)
            diff = float(np.abs(_valid(name, got[name], mask) - _valid(name, ref, mask)).max())
            max_diff[name] = max(max_diff.get(name, 0.0), diff)
        if checkpoint.task == "feature-extraction":
            cosines[batch.kind] = _cosines(_mean_pool(got["last_hidden_state"], mask),
                                           _mean_pool(batch.outputs["last_hidden_state"], mask))
        if batch.kind == "text":
            a, t = _agreement(checkpoint.task, batch.outputs, got, batch.inputs, mask_token_id)
            agree, total = agree + a, total + t

    figures: dict[str, Any] = {"reference": "pytorch-fp32", "max_abs_diff": max_diff}
    if cosines:
        # Headline figures on real sentences; the random-token max-length batch is a stress case.
        figures["embedding_cosine_min"] = float(cosines["text"].min())
        figures["embedding_cosine_mean"] = float(cosines["text"].mean())
        figures["embedding_cosine_min_max_length"] = float(cosines["max-length"].min())
    if total:
        figures["top1_agreement"] = agree / total
        figures["top1_compared"] = total

    if precision == "fp32":
        tolerances = {name: FP32_TOLERANCE for name in max_diff}
    elif precision == "fp16":
        tolerances = {name: FP16_TOLERANCE.get(name, 1e-2) for name in max_diff}
    else:
        return figures  # int8 is judged by agreement, which is recorded, not enforced
    figures["tolerance"] = tolerances
    for name, diff in max_diff.items():
        if diff > tolerances[name]:
            raise ParityError(
                f"{precision} output {name!r} differs from PyTorch by {diff:.3g} (max abs), above the "
                f"tolerance {tolerances[name]:g}; the export is not trustworthy",
                variant=precision, output=name, value=diff, tolerance=tolerances[name],
            )
    return figures
