"""fill-mask: the most likely tokens for each mask token, rendered as transformers renders them.

Works for ``[MASK]`` (WordPiece) and ``<mask>`` (byte-level BPE): ``token_str`` and ``sequence`` come
from the bundle's own decoder, so RoBERTa's leading-space tokens read " capital", not "Ġcapital".
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from tokenizers import Encoding

from ..errors import InputError, MaskTokenMissingError
from ..outputs import FillMaskOutput
from .base import Prepared, Task, as_text_list, check_top_k

logger = logging.getLogger(__name__)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _top_k_stable(row: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest values, largest first, ties in index order.

    Same result as a stable argsort of the whole row, without sorting a 30k-50k vocabulary per mask:
    only the values at or above the k-th largest (ties included) are sorted.
    """
    if k >= row.size:
        return np.argsort(-row, kind="stable")
    threshold = np.partition(row, row.size - k)[row.size - k]
    candidates = np.flatnonzero(row >= threshold)
    return candidates[np.argsort(-row[candidates], kind="stable")][:k]


class FillMask(Task):
    """``fm("Paris is the [MASK] of France.")`` -> ``[{"score", "token", "token_str", "sequence"}, ...]``."""

    task = "fill-mask"
    required_outputs = ("logits",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.tokenizer.mask_id is None:
            from ..errors import BundleError

            raise BundleError(f"the tokenizer of bundle {self.manifest.name!r} defines no mask token, so it cannot fill masks")

    def __call__(self, inputs: str | list[str], *, top_k: int = 5,
                 targets: str | Sequence[str] | None = None) -> FillMaskOutput:
        """Fill every mask token of each text.

        One mask: a list of ``top_k`` predictions (best first).  Several masks in a text: one such list
        per mask, in text order (the other masks stay in ``sequence``, with the special tokens, as
        transformers shows them).  ``targets`` restricts predictions to those tokens (a target that is
        not a vocabulary token is replaced by its first sub-token, with a warning).  A list of texts
        gives a list of those results (a list of one text gives that text's result, as in transformers).
        """
        prepared = self._prepare(inputs=inputs, top_k=top_k, targets=targets)
        results = self.run_prepared(prepared)
        return results[0] if prepared.single or len(results) == 1 else results  # a list of one text: as transformers

    def _prepare(self, *, inputs: Any, top_k: Any, targets: Any) -> Prepared:
        texts, single = as_text_list(inputs, "inputs")
        top_k = check_top_k(top_k)
        target_ids = self._target_ids(targets) if targets is not None else None
        if target_ids is not None:
            top_k = min(top_k, len(target_ids))
        encodings, lengths = self.tokenizer.encode_counted(texts)
        mask_id = self.tokenizer.mask_id
        for index, encoding in enumerate(encodings):
            if mask_id not in encoding.ids:
                where = "the input" if single else f"inputs[{index}]"
                raise MaskTokenMissingError(
                    f"{where} has no mask token ({texts[index][:60]!r}); this model's mask token is "
                    f"{self.tokenizer.mask_token!r}: put it where the missing word goes"
                )
        options = {"top_k": top_k, "targets": None if target_ids is None else tuple(target_ids.tolist())}
        return Prepared(self.task, options, tuple(encodings), tuple(texts), tuple(lengths), single)

    def run_prepared(self, prepared: Prepared) -> list[Any]:
        """Logits at the mask positions only; each mask's best tokens."""
        encodings = list(prepared.inputs)
        self.check_lengths(encodings, prepared.texts, hint="shorten the text around the mask")
        mask_id = self.tokenizer.mask_id
        targets = prepared.options["targets"]
        target_ids = None if targets is None else np.array(targets, dtype=np.int64)

        def keep_mask_rows(out: dict[str, np.ndarray], encoding: Encoding) -> np.ndarray:
            return out["logits"][np.asarray(encoding.ids) == mask_id]

        rows = self.run_rows(encodings, keep_mask_rows)
        return [self._predictions(encoding, logits, prepared.options["top_k"], target_ids)
                for encoding, logits in zip(encodings, rows)]

    def _target_ids(self, targets: str | Sequence[str]) -> np.ndarray:
        items = [targets] if isinstance(targets, str) else list(targets)
        if not all(isinstance(t, str) for t in items):
            raise InputError(f"targets must be a string or a list of strings, got {targets!r:.80}")
        found = []
        for target in items:
            token_id = self.tokenizer.token_to_id(target)
            if token_id is None:
                pieces = self.tokenizer.encode_plain(target).ids
                if not pieces:
                    logger.warning("target %r is not in the vocabulary and encodes to nothing; ignoring it", target)
                    continue
                token_id = pieces[0]
                logger.warning("target %r is not in the vocabulary; using its first token %r instead",
                               target, self.tokenizer.id_to_token(token_id))
            found.append(token_id)
        unique = list(set(found))  # the order transformers uses, so ties rank alike
        if not unique:
            raise InputError(f"none of the targets {items!r} maps to a vocabulary token; pass words the model knows")
        return np.array(unique, dtype=np.int64)

    def _predictions(self, encoding: Encoding, logits: np.ndarray, top_k: int,
                     target_ids: np.ndarray | None) -> list[Any]:
        ids = np.asarray(encoding.ids, dtype=np.int64)
        positions = np.flatnonzero(ids == self.tokenizer.mask_id)
        probs = _softmax(logits.astype(np.float32))
        if target_ids is not None:
            probs = probs[:, target_ids]
        single_mask = len(positions) == 1
        per_mask = []
        for row, position in zip(probs, positions):
            best = _top_k_stable(row, top_k)
            predictions = []
            for choice in best:
                token = int(target_ids[choice]) if target_ids is not None else int(choice)
                tokens = ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != self.tokenizer.pad_id]
                predictions.append({
                    "score": float(row[choice]),
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    # other masks would vanish with the special tokens, so those stay when there are several
                    "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single_mask),
                })
            per_mask.append(predictions)
        return per_mask[0] if single_mask else per_mask
