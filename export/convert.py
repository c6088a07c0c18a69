"""PyTorch -> ONNX fp32 with optimum's exporter (dynamic batch and sequence axes)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .load import Checkpoint

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18


def export_fp32(checkpoint: Checkpoint, out_dir: Path, *, opset: int | None = None) -> Path:
    """Write ``out_dir/model.onnx`` (plus the tokenizer files optimum copies) and return the model path.

    optimum's own validation is skipped: :mod:`distilrt.export.validate` runs a stricter one (padding,
    several lengths, the model's maximum) on every variant.
    """
    from optimum.exporters.onnx import main_export

    noisy = [logging.getLogger(name) for name in ("optimum", "transformers")]
    levels = [log.level for log in noisy]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about constant masks are expected and harmless
        for log in noisy:  # deprecation chatter from inside the exporter, not actionable by the user
            log.setLevel(logging.ERROR)
        try:
            _main_export(main_export, checkpoint, out_dir, opset)
        finally:
            for log, level in zip(noisy, levels):
                log.setLevel(level)
    model = out_dir / "model.onnx"
    if not model.is_file():
        raise RuntimeError(f"optimum's exporter finished but wrote no {model}")
    return model


def _main_export(main_export, checkpoint: Checkpoint, out_dir: Path, opset: int | None) -> None:
    main_export(
        str(checkpoint.path),
        output=out_dir,
        task=checkpoint.task,
        opset=opset or DEFAULT_OPSET,
        do_validation=False,
        library_name="transformers",  # last_hidden_state, not sentence-transformers' pooled output
        no_post_process=False,
    )
