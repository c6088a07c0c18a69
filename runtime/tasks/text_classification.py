"""text-classification: label scores with the function the model's config implies (softmax or sigmoid)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import ClassificationOutput
from .base import Prepared, Task, as_text_list, check_top_k

logger = logging.getLogger(__name__)

FUNCTIONS = ("softmax", "sigmoid", "none")
#: ``top_k`` not passed: transformers' legacy shape (one dict per text), told apart from ``top_k=None``.
_NOT_GIVEN: Any = object()


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


class TextClassification(Task):
    """``tc("I love it")`` -> ``[{"label": "POSITIVE", "score": 0.98}]``."""

    task = "text-classification"
    required_outputs = ("logits",)
    per_sequence_outputs = ("logits",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = self.bundle.config
        raw = config.get("id2label") or {}
        self.id2label = {int(k): str(v) for k, v in raw.items()}
        self.problem_type = config.get("problem_type")
        self.default_function = self._default_function(len(self.id2label) or 2)

    def _default_function(self, num_labels: int) -> str:
        # The rule transformers applies: regression -> raw scores; multi-label or one logit -> sigmoid;
        # otherwise softmax.
        if self.problem_type == "regression":
            return "none"
        if self.problem_type == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        return "softmax"

    def __call__(self, inputs: Any, *, top_k: Any = _NOT_GIVEN, function_to_apply: str | None = None,
                 truncation: bool = False) -> ClassificationOutput:
        """Classify each text (or ``{"text", "text_pair"}`` dict), with transformers' return shapes.

        Without ``top_k``: the best ``{"label", "score"}`` per text, and a single string gives a list
        holding that one dict (as transformers does).  With ``top_k`` (an integer, or None for every
        label): a list of the best ``top_k`` labels per text, best first; a single input gives that list.
        ``function_to_apply`` overrides the config's choice ("softmax", "sigmoid", "none"; any case).
        Texts longer than the model's maximum raise :class:`InputError` unless ``truncation=True``.
        """
        prepared = self._prepare(inputs=inputs, top_k=top_k, function_to_apply=function_to_apply, truncation=truncation)
        results = self.run_prepared(prepared)
        if not prepared.single:
            return results
        return [results[0]] if prepared.options["legacy"] and isinstance(inputs, str) else results[0]

    def _prepare(self, *, inputs: Any, top_k: Any, function_to_apply: Any, truncation: bool) -> Prepared:
        legacy = top_k is _NOT_GIVEN
        top_k = 1 if legacy else check_top_k(top_k, allow_none=True)
        function = function_to_apply.lower() if isinstance(function_to_apply, str) else self.default_function
        if function not in FUNCTIONS:
            raise InputError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}, got {function_to_apply!r}")
        limit = self.max_sequence_length if truncation else None
        pairs = isinstance(inputs, dict) or (isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], dict))
        options = {"top_k": top_k, "function": function, "legacy": legacy}
        if not pairs:
            texts, single = as_text_list(inputs, "inputs")
            encodings, lengths = self.tokenizer.encode_counted(texts, truncate_to=limit)
            return Prepared(self.task, options, tuple(encodings), tuple(texts), tuple(lengths), single)
        items, single = ([inputs], True) if isinstance(inputs, dict) else (list(inputs), False)
        if not all(isinstance(i, dict) and "text" in i for i in items):
            raise InputError("pair inputs must be {'text': ..., 'text_pair': ...} dicts (text_pair optional)")
        texts, _ = as_text_list([i["text"] for i in items], "text")
        seconds, _ = as_text_list([i.get("text_pair", "") for i in items], "text_pair", allow_empty=True)
        tokens = [(a, b if second else None) for a, b, second in
                  zip(self.tokenizer.tokenize(texts), self.tokenizer.tokenize(seconds), seconds)]
        return Prepared(self.task, options, tuple(self.tokenizer.sequence(a, b, truncate_to=limit) for a, b in tokens),
                        tuple(texts), tuple(self.tokenizer.length(a, b) for a, b in tokens), single)

    def run_prepared(self, prepared: Prepared) -> list[Any]:
        """Logits per input; labels scored by the chosen function."""
        encodings = list(prepared.inputs)
        self.check_lengths(encodings, prepared.texts, hint="pass truncation=True to cut it to the model's maximum")
        logits = self.run_rows(encodings, lambda out, enc: out["logits"])
        options = prepared.options
        return [self._labels(row, options["top_k"], options["function"], legacy=options["legacy"]) for row in logits]

    def _labels(self, logits: np.ndarray, top_k: int | None, function: str, *, legacy: bool) -> Any:
        logits = logits.astype(np.float32)
        scores = {"softmax": _softmax, "sigmoid": _sigmoid, "none": lambda x: x}[function](logits)
        labels = [{"label": self.id2label.get(i, f"LABEL_{i}"), "score": float(s)} for i, s in enumerate(scores)]
        labels.sort(key=lambda item: item["score"], reverse=True)
        if legacy:
            return labels[0]
        return labels if top_k is None else labels[:top_k]
