"""What a request will cost, decided before it reaches the model: tokens, QA windows, fill-mask predictions.

A request is prepared on arrival (the task checks it and tokenizes each text once; see
``Task.prepare``), and refused with a status naming the limit and its flag when it would cost more than
the server allows:

- 422 for an input longer than the model's maximum sequence length (not for QA, whose contexts are split);
- 413 when the request's tokens, counting every QA window the runtime will build, pass ``--max-input-tokens``;
- 422 for a fill-mask input with more than ``--max-masks-per-input`` masks, or a request whose masks times
  ``top_k`` pass ``--max-fill-predictions`` (each prediction carries a whole decoded sequence).

The prepared inputs then go to the model as they are.  The token count :func:`measure` returns is the
request's cost in the batcher's token budget (``--max-batch-tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..tasks.base import Prepared
from .errors import ServeHTTPError, bad_input

#: special tokens around one text and around a question/context pair, for pipelines without a tokenizer
_SPECIAL_SINGLE, _SPECIAL_PAIR = 2, 3


@dataclass(frozen=True)
class Limits:
    """The per-request bounds of one served model (resolved from :class:`ServeSettings` and the model)."""

    max_input_tokens: int
    max_masks_per_input: int
    max_fill_predictions: int
    max_sequence_length: int


@dataclass(frozen=True)
class Tokens:
    """A request as the limits read it: tokens per input (every QA window counted, before any truncation)
    and mask tokens per input (fill-mask)."""

    lengths: Sequence[int]
    masks: Sequence[int] = ()

    @classmethod
    def of(cls, prepared: Prepared, mask_id: int | None) -> "Tokens":
        """The counts of a prepared request (its encodings carry the mask ids)."""
        masks = [e.ids.count(mask_id) for e in prepared.inputs] if prepared.task == "fill-mask" else []
        return cls(prepared.lengths, masks)

    @classmethod
    def words(cls, task: str, items: Sequence[Any], mask_token: str | None) -> "Tokens":
        """Whitespace words as tokens, for a pipeline that cannot prepare its inputs (a stand-in)."""
        if task == "question-answering":
            return cls([len(q.split()) + len(c.split()) + _SPECIAL_PAIR for q, c in items])
        texts = [str(item) for item in items]
        masks = [t.count(mask_token) if mask_token else 0 for t in texts] if task == "fill-mask" else []
        return cls([len(t.split()) + _SPECIAL_SINGLE for t in texts], masks)


def too_many_tokens(tokens: int, limit: int, what: str) -> ServeHTTPError:
    return ServeHTTPError(413, f"{what} come to {tokens} tokens; this server accepts at most {limit} tokens per "
                               "request, counting every question-answering window (--max-input-tokens); send fewer "
                               "or shorter inputs per request", code="too_many_tokens", param="inputs")


def measure(task: str, tokens: Tokens, params: dict[str, Any], meta: dict[str, Any], limits: Limits) -> int:
    """The request's token cost; raises the 413/422 that refuses it when it passes a limit."""
    field = meta.get("field", "inputs")
    single = meta.get("single", False)

    def where(i: int) -> str:
        return field if single else f"{field}[{i}]"

    total = sum(tokens.lengths)
    if task == "question-answering":
        if total > limits.max_input_tokens:
            raise too_many_tokens(total, limits.max_input_tokens, "the question-answering windows of this request")
        return total
    if not meta.get("truncate"):
        for i, length in enumerate(tokens.lengths):
            if length > limits.max_sequence_length:
                raise bad_input(f"{where(i)} is {length} tokens long; this model accepts at most "
                                f"{limits.max_sequence_length} tokens (its max_sequence_length); shorten or split "
                                "the text", param=where(i))
    if total > limits.max_input_tokens:
        raise too_many_tokens(total, limits.max_input_tokens, "the inputs of this request")
    if task == "fill-mask":
        _check_masks(tokens.masks, params, limits, where)
    return total


def _check_masks(masks: Sequence[int], params: dict[str, Any], limits: Limits, where: Any) -> None:
    top_k = int(params.get("top_k", 5))
    if params.get("targets"):
        top_k = min(top_k, len(params["targets"]))
    predictions = 0
    for i, count in enumerate(masks):
        if count > limits.max_masks_per_input:
            raise bad_input(f"{where(i)} has {count} mask tokens; this server fills at most "
                            f"{limits.max_masks_per_input} per input (--max-masks-per-input); split the text",
                            param=where(i))
        predictions += count * top_k
    if predictions > limits.max_fill_predictions:
        raise bad_input(f"this request asks for {predictions} predictions (masks x top_k={top_k}); this server returns "
                        f"at most {limits.max_fill_predictions} per request (--max-fill-predictions); lower top_k or "
                        "send fewer masks per request", param="parameters.top_k")
