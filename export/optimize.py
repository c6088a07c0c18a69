"""Graph optimisation with ONNX Runtime's transformer optimizer (the fused extra graphs of a bundle)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)


def head_geometry(config: dict[str, Any]) -> tuple[int, int]:
    """(num_heads, hidden_size) under either DistilBERT's or BERT/RoBERTa's config names."""
    heads = config.get("n_heads", config.get("num_attention_heads"))
    hidden = config.get("dim", config.get("hidden_size"))
    if heads is None or hidden is None:
        raise ValueError("config has no attention head count / hidden size")
    return int(heads), int(hidden)


def fuse(model_path: Path, out_path: Path, config: dict[str, Any], *, for_cpu: bool = False) -> dict[str, int]:
    """Fuse attention, LayerNorm, GELU and embeddings; return the fused-operator counts.

    ``opt_level=0`` keeps the file portable: only the Python fusions run, not ORT's hardware-specific
    level-2 rewrites, which sessions apply at load time anyway.  ``for_cpu=True`` leaves out the fusions
    whose CPU kernels measured slower than what they replace (full-size DistilBERT-QA, 2 threads):
    SkipLayerNormalization (see ``runtime.engines.onnxruntime.CPU_DISABLED_OPTIMIZERS``); BiasGelu, whose bias the
    int8 projection otherwise absorbs (10.7 vs 5.6 ms of GELU at 8x128 int8); and
    EmbedLayerNormalization, which shares the word-embedding table with a Gather kept for a shape and so
    makes the int8 quantiser dequantise the whole table on every run (13.6 ms at 1x128).  Without the
    last two the fp32 graph measured 37.2 / 111 / 265 ms vs 38.4 / 122 / 281 ms at 1x128 / 1x384 / 8x128.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = head_geometry(config)
    options = FusionOptions("bert")
    if for_cpu:
        for name in ("enable_skip_layer_norm", "enable_bias_skip_layer_norm", "enable_bias_gelu",
                     "enable_embed_layer_norm"):
            setattr(options, name, False)
    optimized = optimize_model(str(model_path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0,
                               optimization_options=options)
    optimized.save_model_to_file(str(out_path))
    stats = optimized.get_fused_operator_statistics()
    return {name: int(count) for name, count in stats.items() if count}
