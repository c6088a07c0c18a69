"""What a request will cost, decided before it reaches the model: tokens, QA windows, fill-mask predictions.

Every request is tokenized once on arrival (with the bundle's own tokenizer, no truncation) and refused
with a status naming the limit and its flag when it would cost more than the server allows:

- 422 for an input longer than the model's maximum sequence length (not for QA, whose contexts are split);
- 413 when the request's tokens, counting every QA window the runtime will build, pass ``--max-input-tokens``;
- 422 for a fill-mask input with more than ``--max-masks-per-input`` masks, or a request whose masks times
  ``top_k`` pass ``--max-fill-predictions`` (each prediction carries a whole decoded sequence).

The token count it returns is the request's cost in the batcher's token budget (``--max-batch-tokens``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ServeHTTPError, bad_input

#: special tokens around one text and around a question/context pair when no tokenizer is at hand
_SPECIAL_SINGLE, _SPECIAL_PAIR = 2, 3


@dataclass(frozen=True)
class Limits:
    """The per-request bounds of one served model (resolved from :class:`ServeSettings` and the model)."""

    max_input_tokens: int
    max_masks_per_input: int
    max_fill_predictions: int
    max_sequence_length: int


def too_many_tokens(tokens: int, limit: int, what: str) -> ServeHTTPError:
    return ServeHTTPError(413, f"{what} come to {tokens} tokens; this server accepts at most {limit} tokens per "
                               "request, counting every question-answering window (--max-input-tokens); send fewer "
                               "or shorter inputs per request", code="too_many_tokens", param="inputs")


class Counter:
    """Token counts from a bundle's tokenizer (``tokenizers.Tokenizer`` without truncation), or word counts."""

    def __init__(self, tokenizer: Any = None, mask_token: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.mask_id = tokenizer.token_to_id(mask_token) if tokenizer is not None and mask_token else None
        self.mask_token = mask_token
        self.special_single = tokenizer.num_special_tokens_to_add(False) if tokenizer is not None else _SPECIAL_SINGLE
        self.special_pair = tokenizer.num_special_tokens_to_add(True) if tokenizer is not None else _SPECIAL_PAIR

    def ids(self, texts: Sequence[str], *, special: bool) -> list[list[int]]:
        """Token ids of each text; without a tokenizer, one pseudo id per whitespace-separated word."""
        if self.tokenizer is None:
            return [[0] * (len(t.split()) + (_SPECIAL_SINGLE if special else 0)) for t in texts]
        try:
            return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=special)]
        except Exception:  # find the culprit and name it
            for index, text in enumerate(texts):
                try:
                    self.tokenizer.encode(text)
                except Exception as exc:
                    raise bad_input(f"inputs[{index}] cannot be tokenized ({type(exc).__name__}); send plain UTF-8 "
                                    "text", param=f"inputs[{index}]") from None
            raise

    def masks(self, text: str, ids: list[int]) -> int:
        if self.mask_id is not None:
            return sum(1 for i in ids if i == self.mask_id)
        return text.count(self.mask_token) if self.mask_token else 0


def measure(task: str, items: Sequence[Any], params: dict[str, Any], meta: dict[str, Any], counter: Counter,
            limits: Limits) -> int:
    """The request's token cost; raises the 413/422 that refuses it when it passes a limit."""
    field = meta.get("field", "inputs")
    single = meta.get("single", False)

    def where(i: int) -> str:
        return field if single else f"{field}[{i}]"

    if task == "question-answering":
        total = _qa_tokens(items, params, counter, limits, where)
    else:
        ids = counter.ids([str(t) for t in items], special=True)
        total = sum(len(x) for x in ids)
        if not meta.get("truncate"):
            for i, row in enumerate(ids):
                if len(row) > limits.max_sequence_length:
                    raise bad_input(f"{where(i)} is {len(row)} tokens long; this model accepts at most "
                                    f"{limits.max_sequence_length} tokens (its max_sequence_length); shorten or split "
                                    "the text", param=where(i))
        if total > limits.max_input_tokens:
            raise too_many_tokens(total, limits.max_input_tokens, "the inputs of this request")
        if task == "fill-mask":
            _check_masks(items, ids, params, counter, limits, where)
    return total


def _check_masks(items: Sequence[Any], ids: list[list[int]], params: dict[str, Any], counter: Counter,
                 limits: Limits, where: Any) -> None:
    top_k = int(params.get("top_k", 5))
    if params.get("targets"):
        top_k = min(top_k, len(params["targets"]))
    predictions = 0
    for i, (text, row) in enumerate(zip(items, ids)):
        masks = counter.masks(str(text), row)
        if masks > limits.max_masks_per_input:
            raise bad_input(f"{where(i)} has {masks} mask tokens; this server fills at most "
                            f"{limits.max_masks_per_input} per input (--max-masks-per-input); split the text",
                            param=where(i))
        predictions += masks * top_k
    if predictions > limits.max_fill_predictions:
        raise bad_input(f"this request asks for {predictions} predictions (masks x top_k={top_k}); this server returns "
                        f"at most {limits.max_fill_predictions} per request (--max-fill-predictions); lower top_k or "
                        "send fewer masks per request", param="parameters.top_k")


def _qa_tokens(items: Sequence[Any], params: dict[str, Any], counter: Counter, limits: Limits, where: Any) -> int:
    """Tokens of every window the runtime will build for these question/context pairs.

    Mirrors the runtime's windowing: the question (cut to ``max_question_len``) and the special tokens in
    every window, the context split into ``max_seq_len`` windows overlapping by ``doc_stride`` tokens.
    """
    max_seq_len = int(params.get("max_seq_len") or min(limits.max_sequence_length, 384))
    stride = params.get("doc_stride")
    stride = int(stride) if stride is not None else min(max_seq_len // 2, 128)
    max_question_len = int(params.get("max_question_len") or 64)
    questions = counter.ids([q for q, _ in items], special=False)
    contexts = counter.ids([c for _, c in items], special=False)
    total = 0
    for i, (question, context) in enumerate(zip(questions, contexts)):
        head = min(len(question), max_question_len) + counter.special_pair
        room = max_seq_len - head
        if room < 1:
            raise bad_input(f"{where(i)}.question takes {head} tokens with the special tokens, leaving no room for the "
                            f"context within max_seq_len={max_seq_len}; shorten the question or pass a smaller "
                            "parameters.max_question_len", param=f"{where(i)}.question")
        length = len(context)
        if length <= room:
            windows = 1
        elif stride >= room:
            raise bad_input(f"parameters.doc_stride={stride} must be smaller than the {room} context tokens that fit "
                            f"in one window (max_seq_len={max_seq_len} minus the question and special tokens)",
                            param="parameters.doc_stride")
        else:
            windows = 1 + math.ceil((length - room) / (room - stride))
        total += length + windows * head + (windows - 1) * stride
        if total > limits.max_input_tokens:  # stop counting early: the request is refused either way
            raise too_many_tokens(total, limits.max_input_tokens,
                                  f"the question-answering windows of this request (through {where(i)})")
    return total
