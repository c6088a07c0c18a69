"""fp16 and int8 through the runtime agree with fp32 at the figures the exporter recorded in the manifest.

The texts are the exporter's own validation set.  fp16 is held to closeness: its logits may differ from the
runtime's fp32 ones by at most what the exporter measured against PyTorch (fp16 and fp32 figures added,
with 50% headroom for the different padding of the runtime's length-sorted batches) and never more than the
manifest's tolerance.  int8 is held to agreement: top-1 decisions agree with fp32 at least as often as the
exporter recorded; embeddings keep the recorded cosine (less 0.005, since dynamic quantisation scales
activations per batch and the runtime batches differently).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from distilrt.export.validate import MASK_TEMPLATES, QA_PAIRS, SENTENCES
from distilrt.runtime import pipeline


def raw_outputs(pipe: Any, name: str) -> list[dict[str, np.ndarray]]:
    if pipe.task == "question-answering":
        encodings = [w for q, c in QA_PAIRS for w in pipe.tokenizer.encode_windows(
            q, c, max_seq_len=pipe.max_sequence_length, doc_stride=128, max_question_len=64)]
    elif pipe.task == "fill-mask":
        encodings = pipe.tokenizer.encode([t.replace("{mask}", pipe.mask_token) for t in MASK_TEMPLATES])
    else:
        encodings = pipe.tokenizer.encode(list(SENTENCES))
    return pipe.run_rows(encodings, lambda out, enc: {**out, "_ids": np.asarray(enc.ids),
                                                        "_context": np.asarray([s == 1 for s in enc.sequence_ids])})


def variants(bundle: Any) -> dict[str, Any]:
    return {p: pipeline(model=bundle, precision=p, provider="cpu", optimized_cache=False) for p in ("fp32", "fp16", "int8")}


CASES = ["distilbert-qa-uncased", "distilbert-mlm-uncased", "roberta-mlm", "distilbert-classifier",
         "distilbert-features-cased"]


@pytest.mark.parametrize("name", CASES)
def test_fp16_close_to_fp32_within_recorded_figures(make_bundle, name: str) -> None:
    pipes = variants(make_bundle(name))
    manifest = pipes["fp32"].manifest
    recorded16, recorded32 = manifest.variants["fp16"].parity, manifest.variants["fp32"].parity
    ref, got = raw_outputs(pipes["fp32"], name), raw_outputs(pipes["fp16"], name)
    for output in manifest.outputs:
        diff = max(float(np.abs(g[output] - r[output]).max()) for g, r in zip(got, ref))
        bound = 1.5 * (recorded16["max_abs_diff"][output] + recorded32["max_abs_diff"][output])
        assert diff <= bound, f"{name} {output}: fp16 vs fp32 differ by {diff:.3g}, recorded figures allow {bound:.3g}"
        assert diff <= recorded16["tolerance"][output]
        assert all(np.isfinite(g[output]).all() for g in got)


def top1_agreement(task: str, ref: list[dict], got: list[dict], mask_id: int | None) -> float:
    agree = total = 0
    for r, g in zip(ref, got):
        if task == "question-answering":
            for output in ("start_logits", "end_logits"):
                agree += int(r[output].argmax() == g[output].argmax())
                total += 1
        elif task == "fill-mask":
            rows = r["_ids"] == mask_id
            agree += int((r["logits"][rows].argmax(-1) == g["logits"][rows].argmax(-1)).sum())
            total += int(rows.sum())
        else:
            agree += int(r["logits"].argmax() == g["logits"].argmax())
            total += 1
    return agree / total


@pytest.mark.parametrize("name", [c for c in CASES if c != "distilbert-features-cased"])
def test_int8_agrees_with_fp32_as_recorded(make_bundle, name: str) -> None:
    pipes = variants(make_bundle(name))
    recorded = pipes["fp32"].manifest.variants["int8"].parity
    ref, got = raw_outputs(pipes["fp32"], name), raw_outputs(pipes["int8"], name)
    agreement = top1_agreement(pipes["fp32"].task, ref, got, pipes["fp32"].tokenizer.mask_id)
    assert agreement >= recorded["top1_agreement"], f"{name}: int8 agrees {agreement:.0%}, recorded {recorded['top1_agreement']:.0%}"


def test_int8_embeddings_keep_recorded_cosine(minilm_bundle) -> None:
    pipes = variants(minilm_bundle)
    recorded = pipes["fp32"].manifest.variants["int8"].parity["embedding_cosine_min"]
    a = pipes["fp32"](list(SENTENCES), pooling="mean", normalize=True, return_tensors=True)
    b = pipes["int8"](list(SENTENCES), pooling="mean", normalize=True, return_tensors=True)
    cosine = (a * b).sum(1)
    assert cosine.min() >= recorded - 0.005, f"int8 cosine {cosine.min():.5f}, recorded {recorded:.5f}"
    assert cosine.min() >= 0.99
    c = pipes["fp16"](list(SENTENCES), pooling="mean", normalize=True, return_tensors=True)
    assert (a * c).sum(1).min() >= 0.9999
