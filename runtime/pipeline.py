"""``pipeline(task, model=BUNDLE_DIR, ...)``: a bundle turned into a callable task object."""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from .bundle import Bundle, load_bundle
from .errors import InputError
from .providers import resolve_providers, tensorrt_options
from .registry import TASKS, check_task
from .engines.base import Engine
from .engines.onnxruntime import OrtEngine, SessionSettings
from .tasks.base import Task
from .tokenizer import TextTokenizer

logger = logging.getLogger(__name__)

#: task -> "module:Class" under distilrt.runtime.tasks (imported on first use).
TASK_CLASSES: dict[str, str] = {
    "question-answering": "question_answering:QuestionAnswering",
    "fill-mask": "fill_mask:FillMask",
    "feature-extraction": "feature_extraction:FeatureExtraction",
    "text-classification": "text_classification:TextClassification",
}
assert set(TASK_CLASSES) == set(TASKS), "every registered task needs a runtime class"


def task_class(task: str) -> type[Task]:
    module_name, class_name = TASK_CLASSES[check_task(task)].split(":")
    module = importlib.import_module(f"{__package__}.tasks.{module_name}")
    return getattr(module, class_name)


def _as_tuple(names: Sequence[str] | None) -> Any:
    """A sequence as a tuple; None and a lone string unchanged (SessionSettings rejects the string)."""
    return names if names is None or isinstance(names, str) else tuple(names)


def pipeline(
    task: str | None = None,
    *,
    model: str | Path | Bundle,
    precision: str = "auto",
    provider: str = "auto",
    batch_size: int = 32,
    threads: int | None = None,
    optimization: str = "all",
    optimized_cache: bool = False,
    cache_dir: str | Path | None = None,
    device_id: int = 0,
    io_binding: bool | None = None,
    tensorrt_cache_dir: str | Path | None = None,
    disabled_optimizers: Sequence[str] | None = None,
    streams: int = 1,
) -> Any:
    """Load a bundle for ``task`` (None: the bundle's own task) and return the callable task object.

    ``precision``: "auto" (int8 on CPU, fp16 on CUDA/TensorRT, falling back to what the bundle has),
    "fp32", "fp16" or "int8".  ``provider``: "auto" (CUDA if usable, else CPU), "cpu", "cuda" or
    "tensorrt".  ``batch_size`` bounds how many sequences run together (inputs are length-sorted into
    batches).  ``threads`` sets ONNX Runtime's intra-op threads (default: physical cores);
    ``optimization`` its graph optimisation level ("disabled", "basic", "extended", "all").
    ``optimized_cache=True`` saves ONNX Runtime's optimised graph under ``cache_dir`` (default
    ``<bundle>/.cache``, keyed by the variant's SHA-256) and reuses it on the next start; off by default
    because exported bundles are already fused (see :mod:`distilrt.runtime.cache`).  ``io_binding`` (default: on for GPU providers) keeps inputs
    and outputs on the device.  ``tensorrt_cache_dir`` holds TensorRT engines (default
    ``<bundle>/.cache/tensorrt``).  ``disabled_optimizers`` names ONNX Runtime graph rewrites to leave
    out (default: ``SkipLayerNormFusion`` on CPU, which measures slower there; nothing on GPU; ``()`` keeps
    every rewrite).

    Every model file is checked against the manifest's SHA-256 before ONNX Runtime opens it.
    """
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    task = bundle.check_task(task)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    settings = SessionSettings(threads=threads, optimization=optimization, optimized_cache=optimized_cache,
                               cache_dir=Path(cache_dir) if cache_dir else None, io_binding=io_binding,
                               disabled_optimizers=_as_tuple(disabled_optimizers))

    probe = resolve_providers(provider, device_id=device_id, tensorrt={})  # validates the request first
    chosen = bundle.choose_precision(precision, device=probe.device)
    file_precision = chosen
    trt: dict[str, Any] | None = None
    if probe.name == "tensorrt":
        # TensorRT builds its own fp16 engine from the fp32 graph; the fp16-converted graph's casts
        # would only stand in its way.
        if chosen == "fp16" and "fp32" in bundle.manifest.variants:
            file_precision = "fp32"
            logger.info("tensorrt: building an fp16 engine from the fp32 graph of %s", bundle.manifest.name)
        trt = tensorrt_options(
            precision=chosen, input_names=bundle.manifest.inputs, max_batch=batch_size,
            max_length=bundle.manifest.max_sequence_length, device_id=device_id,
            cache_dir=Path(tensorrt_cache_dir) if tensorrt_cache_dir else bundle.path / ".cache" / "tensorrt",
        )
    plan = resolve_providers(provider, device_id=device_id, tensorrt=trt) if trt is not None else probe
    tokenizer = TextTokenizer.from_bundle(bundle.path, max_length=bundle.manifest.max_sequence_length,
                                          model_vocab_size=bundle.vocab_size)
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise InputError(f"streams must be a positive integer, got {streams!r}")
    if streams > 1 and plan.device != "cpu":
        raise InputError(f"streams={streams} applies to the CPU provider only; on {plan.name} one stream keeps "
                         "the device busy: leave streams at 1 and raise batch_size instead")
    session = OrtEngine(bundle.path, bundle.manifest, chosen, plan, settings, file_precision=file_precision)

    def stream_session() -> Engine:
        return OrtEngine(bundle.path, bundle.manifest, chosen, plan, replace(settings, threads=1),
                            file_precision=file_precision)

    return task_class(task)(bundle=bundle, session=session, tokenizer=tokenizer, batch_size=batch_size,
                            streams=streams, stream_session=stream_session if streams > 1 else None)
