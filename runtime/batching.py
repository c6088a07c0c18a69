"""Length-sorted batching and padding: the least padding for a given batch size, results in input order."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tokenizers import Encoding

from .errors import BundleError

#: Graph inputs the runtime knows how to fill from an encoding.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (shortest first); stable for equal lengths."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(encodings: Sequence[Encoding], *, pad_id: int, input_names: Sequence[str],
              dtypes: dict[str, type] | None = None) -> dict[str, np.ndarray]:
    """Feeds for the graph's declared inputs, padded on the right to the longest encoding."""
    unknown = [name for name in input_names if name not in KNOWN_INPUTS]
    if unknown:
        raise BundleError(f"the model declares inputs {unknown} the runtime cannot fill; it fills {', '.join(KNOWN_INPUTS)}")
    rows, length = len(encodings), max(len(e.ids) for e in encodings)
    ids = np.full((rows, length), pad_id, dtype=np.int64)
    mask = np.zeros((rows, length), dtype=np.int64)
    types = np.zeros((rows, length), dtype=np.int64) if "token_type_ids" in input_names else None
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = encoding.type_ids
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    dtypes = dtypes or {}
    return {name: arrays[name].astype(dtypes.get(name, np.int64), copy=False) for name in input_names}
