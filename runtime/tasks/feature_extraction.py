"""feature-extraction: token hidden states, or pooled sentence embeddings (mean / CLS / max), optionally L2-normalised.

A bundle exported from a sentence-transformers model records its pooling in the manifest; ``pooling="auto"``
uses it (and its normalisation, and its ``max_seq_length``), so embeddings match ``SentenceTransformer.encode``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import FeaturesOutput
from ..tokenizer import read_json
from .base import Task, as_text_list

logger = logging.getLogger(__name__)

POOLINGS = ("auto", "none", "mean", "cls", "max")


class FeatureExtraction(Task):
    """``fe(texts, pooling="mean", normalize=True)`` -> ``np.ndarray [n, hidden]``."""

    task = "feature-extraction"
    required_outputs = ("last_hidden_state",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle_pooling: dict[str, Any] = dict(self.manifest.pooling or {})
        self.sentence_max_length = self._sentence_max_length()

    def _sentence_max_length(self) -> int | None:
        """sentence-transformers' ``max_seq_length`` (it truncates there), if the bundle came from such a model."""
        if not self.bundle_pooling:
            return None
        value = read_json(self.manifest, self.bundle.path, "sentence_bert_config.json").get("max_seq_length")
        return min(int(value), self.max_sequence_length) if isinstance(value, int) and value > 0 else None

    @property
    def embedding_size(self) -> int | None:
        value = self.bundle.config.get("hidden_size", self.bundle.config.get("dim"))
        return int(value) if isinstance(value, int) else None

    def __call__(self, inputs: str | list[str], *, pooling: str = "auto", normalize: bool | None = None,
                 truncation: bool | None = None) -> FeaturesOutput:
        """Features of each text.

        ``pooling``: "none" gives each text's token states as a float32 array ``[tokens, hidden]``
        (special tokens included, padding removed); "mean" (over real tokens), "cls" or "max" give
        one vector per text, stacked into ``[n, hidden]`` (a single string gives ``[hidden]``).
        "auto" is the bundle's sentence-transformers pooling, else "none".  ``normalize`` (default:
        the bundle's sentence-transformers setting, else False) L2-normalises pooled vectors.
        ``truncation``: None cuts texts at a sentence-transformers bundle's ``max_seq_length`` as
        sentence-transformers does and refuses over-long texts otherwise; True cuts at the model's
        maximum; False always refuses.
        """
        texts, single = as_text_list(inputs, "inputs")
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        mode = self.bundle_pooling.get("mode", "none") if pooling == "auto" else pooling
        if normalize is None:
            normalize = bool(self.bundle_pooling.get("normalize", False))
        if normalize and mode == "none":
            raise InputError("normalize=True needs pooled vectors; pass pooling='mean', 'cls' or 'max'")
        if truncation is None:
            limit = self.sentence_max_length
        else:
            limit = self.max_sequence_length if truncation else None
        encodings = self.tokenizer.encode(texts, truncate_to=limit)
        self.check_lengths(encodings, texts, hint="pass truncation=True to cut it to the model's maximum")
        if mode == "none":
            states = self.run_rows(encodings, lambda out, enc: np.array(out["last_hidden_state"], dtype=np.float32))
            return states[0] if single else states
        vectors = np.stack(self.run_rows(encodings, lambda out, enc: self._pool(out["last_hidden_state"], mode)))
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        vectors = vectors.astype(np.float32, copy=False)
        return vectors[0] if single else vectors

    @staticmethod
    def _pool(states: np.ndarray, mode: str) -> np.ndarray:
        # ``states`` holds only this text's tokens (padding was cut off), so a plain mean is the
        # attention-mask-weighted mean.
        if mode == "cls":
            return states[0].astype(np.float32)
        if mode == "max":
            return states.max(axis=0).astype(np.float32)
        return states.astype(np.float32).mean(axis=0)
