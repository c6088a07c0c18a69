"""``pipeline(task, model=BUNDLE_DIR, ...)``: a bundle turned into a callable task object."""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, overload

from . import tensorrt as trt
from .bundle import PRECISION_CHOICES, Bundle, load_bundle
from .errors import InputError, UnknownNameError
from .providers import PROVIDERS, ProviderPlan, resolve_providers
from .registry import TASKS, check_task
from .engines.base import Engine
from .engines.choose import choose_engine
from .engines.onnxruntime import OrtEngine, SessionSettings
from .tasks.base import Task
from .tokenizer import TextTokenizer
from .validation import check_threads

if TYPE_CHECKING:  # the task classes are imported on first use (see task_class)
    from .tasks.feature_extraction import FeatureExtraction
    from .tasks.fill_mask import FillMask
    from .tasks.question_answering import QuestionAnswering
    from .tasks.text_classification import TextClassification

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


#: The graphs ONNX Runtime's CUDA provider prefers, best first (see ``Manifest.preferred_graph``).
CUDA_GRAPH_ORDER: tuple[str, ...] = ("fused", "plain")


def _graph_for(bundle: Bundle, precision: str, device: str) -> str:
    """The graph key to run ``precision`` on ``device`` before anything is measured on this host.

    CPU: the flash-attention graph, else the fused one, else the standard file; fp16 keeps the standard
    file there (the fused fp16 graph's kernels are CUDA's; the CPU would run them in fp32 between Casts).
    CUDA: ONNX Runtime's fused graph (fp16: every fusion, in fp16), else the standard file.
    """
    if device == "cuda":
        return bundle.manifest.preferred_graph(precision, CUDA_GRAPH_ORDER)
    return precision if precision == "fp16" else bundle.manifest.preferred_graph(precision)


def _plan(bundle: Bundle, provider: str, precision: str, *, batch_size: int, device_id: int,
          tensorrt_cache_dir: str | Path | None) -> tuple[ProviderPlan, str, str]:
    """(provider plan, precision, graph key for the manifest) before any session exists."""
    probe = resolve_providers(provider, device_id=device_id, tensorrt={})  # validates the request first
    if probe.name != "tensorrt":
        chosen = bundle.choose_precision(precision, device=probe.device)
        if probe.name == "cuda" and chosen == "int8":
            logger.warning("int8 on CUDA: ONNX Runtime's CUDA provider has no kernels for the dynamic int8 graph's "
                           "uint8 x int8 MatMulInteger / DynamicQuantizeMatMul, so most of %s runs on the CPU; "
                           "use precision='fp16' on CUDA, or provider='tensorrt' with a static QDQ int8 graph",
                           bundle.manifest.name)
        return probe, chosen, _graph_for(bundle, chosen, probe.device)
    if precision not in PRECISION_CHOICES:
        raise UnknownNameError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_CHOICES)}")
    chosen, key, why = trt.choose_precision(bundle.manifest, bundle.path, precision)
    logger.info("tensorrt: %s at %s from %s", bundle.manifest.name, chosen, why)
    variant = bundle.manifest.variant(key)
    profile = trt.TensorrtProfile.covering(max_length=bundle.manifest.max_sequence_length, batch_size=batch_size)
    root = Path(tensorrt_cache_dir) if tensorrt_cache_dir else None
    options = trt.tensorrt_options(
        precision=chosen, input_names=bundle.manifest.inputs, profile=profile, device_id=device_id,
        cache_dir=trt.engine_cache_dir(variant.sha256, precision=chosen, profile=profile, root=root),
        timing_dir=trt.timing_cache_dir(root))
    return resolve_providers(provider, device_id=device_id, tensorrt=options), chosen, key


def _device_provider(device: Any, provider: str, device_id: int) -> tuple[str, int]:
    """transformers' ``device`` (-1 / "cpu", an index or "cuda[:N]") as a provider and device index."""
    if device is None:
        return provider, device_id
    if provider != "auto":
        raise InputError(f"pass either device= (transformers' spelling) or provider=, not both (got device={device!r}, "
                         f"provider={provider!r})")
    if device == -1 or device == "cpu":
        return "cpu", device_id
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return "cuda", device
    if isinstance(device, str) and (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        return "cuda", int(device[5:]) if ":" in device else 0
    raise InputError(f"device must be -1 or 'cpu', a GPU index or 'cuda[:N]', got {device!r}")


# What an editor shows: the task object each task name gives (its call is typed in runtime/outputs.py).
@overload
def pipeline(task: Literal["question-answering"], model: str | Path | Bundle | None = None,
             **options: Any) -> QuestionAnswering: ...
@overload
def pipeline(task: Literal["fill-mask"], model: str | Path | Bundle | None = None, **options: Any) -> FillMask: ...
@overload
def pipeline(task: Literal["feature-extraction"], model: str | Path | Bundle | None = None,
             **options: Any) -> FeatureExtraction: ...
@overload
def pipeline(task: Literal["text-classification"], model: str | Path | Bundle | None = None,
             **options: Any) -> TextClassification: ...
@overload
def pipeline(task: str | None = None, model: str | Path | Bundle | None = None, **options: Any) -> Any: ...


def pipeline(
    task: str | None = None,
    model: str | Path | Bundle | None = None,
    *,
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
    streams: int | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    tokenizer: str | None = None,
    device: int | str | None = None,
    export: bool = True,
    **call_defaults: Any,
) -> Any:
    """Load a model for ``task`` (None: the model's own task) and return the callable task object.

    ``model`` (positional or keyword, as in transformers): a bundle directory, or a model id, found in
    this order (see :mod:`distilrt.runtime.resolve`): distilrt's bundle cache, a hub repository that
    ships ONNX files, then (with the export extra, unless ``export=False``) an export on demand.
    ``revision`` and ``token`` go to huggingface_hub.  The returned object's ``resolved`` says which
    way was taken.  ``tokenizer`` may repeat the model id (transformers code often does): a bundle
    carries its own tokenizer.  ``device`` takes transformers' values (-1 / "cpu", a GPU index,
    "cuda[:N]") in place of ``provider``.  Any other keyword (``top_k=3``, ``function_to_apply=...``)
    becomes a default of every call, as transformers' pipeline takes it.

    ``precision``: "auto", "fp32", "fp16", "int8" (dynamic), "int8-static" (calibrated QDQ) or "bf16"
    (OpenVINO only).  ``provider``: "auto", "cpu", "cuda", "tensorrt" (ONNX Runtime) or "openvino".
    With both "auto", the setting ``distilrt tune`` measured fastest on this host is used, else a
    default by CPU flags (see :mod:`distilrt.runtime.engines.choose`; ``distilrt info BUNDLE`` says
    which applies and why).  On ONNX Runtime, precision "auto" is int8 on CPU and fp16 on
    CUDA/TensorRT, falling back to what the bundle has; when ``provider="auto"`` picked CUDA but CUDA
    does not load, it is re-planned for the CPU with a warning.  ``batch_size`` bounds how many
    sequences run together (inputs are length-sorted into batches).  ``threads``: intra-op threads
    (default: physical cores, or what tuning chose).  ``streams``: bulk calls run this many batches at
    once (ONNX Runtime: one core each on a shared single-threaded session; OpenVINO: that many streams
    over ``threads``); default 1, or what tuning chose.  OpenVINO keeps its compiled models under the
    user cache directory (``$DISTILRT_CACHE_DIR`` overrides it).

    ONNX Runtime only: ``optimization`` is its graph optimisation level ("disabled", "basic",
    "extended", "all").
    ``optimized_cache=True`` saves ONNX Runtime's optimised graph under ``cache_dir`` (default
    ``<bundle>/.cache``, keyed by the variant's SHA-256) and reuses it on the next start; off by default
    because exported bundles are already fused (see :mod:`distilrt.runtime.cache`).  ``io_binding`` (default: on for GPU providers) keeps inputs
    and outputs on the device.  ``tensorrt_cache_dir`` holds TensorRT engines, one folder per graph SHA-256, precision and
    shape profile (default: ``tensorrt`` in the user cache directory, see :mod:`distilrt.runtime.tensorrt`);
    TensorRT is given a graph of standard ONNX operators only, or a typed error says why none fits.  ``disabled_optimizers`` names ONNX Runtime graph rewrites to leave
    out (default: ``SkipLayerNormFusion`` on CPU, which measures slower there; nothing on GPU; ``()`` keeps
    every rewrite).

    Every model file is checked against the manifest's SHA-256 before an engine opens it.
    """
    if model is None:
        raise InputError("pass the model: pipeline(TASK, MODEL) with a bundle directory or a model id such as "
                         "distilbert-base-uncased-distilled-squad (distilrt picks no default model)")
    if tokenizer is not None and not (isinstance(tokenizer, (str, Path)) and str(tokenizer) == str(model)):
        raise InputError(f"tokenizer={tokenizer!r} differs from the model; a distilrt bundle runs with its own "
                         "tokenizer (tokenizer.json), so leave tokenizer= out")
    provider, device_id = _device_provider(device, provider, device_id)
    resolution = None
    if isinstance(model, Bundle):
        bundle = model
    else:
        from .resolve import resolve_model

        if task is not None:
            check_task(task)
        resolution = resolve_model(model, task=task, revision=revision, token=token, export=export)
        if resolution.how != "local bundle":
            logger.info("model %s", resolution.describe())
        bundle = load_bundle(resolution.path)
    task_object = _build(task, bundle, precision=precision, provider=provider, batch_size=batch_size,
                         threads=threads, optimization=optimization, optimized_cache=optimized_cache,
                         cache_dir=cache_dir, device_id=device_id, io_binding=io_binding,
                         tensorrt_cache_dir=tensorrt_cache_dir, disabled_optimizers=disabled_optimizers, streams=streams)
    task_object.resolved = resolution
    if call_defaults:
        task_object.set_call_defaults(call_defaults)
    return task_object


def _build(task: str | None, bundle: Bundle, *, precision: str, provider: str, batch_size: int, threads: int | None,
           optimization: str, optimized_cache: bool, cache_dir: str | Path | None, device_id: int,
           io_binding: bool | None, tensorrt_cache_dir: str | Path | None, disabled_optimizers: Sequence[str] | None,
           streams: int | None) -> Task:
    task = bundle.check_task(task)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    check_threads(streams, name="streams", flag="--streams")
    choice = choose_engine(bundle, precision=precision, provider=provider)
    logger.info("engine for %s: %s %s (%s)", bundle.manifest.name, choice.engine, choice.precision, choice.reason)
    if threads is None and choice.threads is not None:
        threads = choice.threads
    if streams is None:
        streams = choice.streams or 1
    tokenizer = TextTokenizer.from_bundle(bundle.path, max_length=bundle.manifest.max_sequence_length,
                                          model_vocab_size=bundle.vocab_size)
    if choice.engine == "openvino":
        session, stream_session = _openvino_engines(bundle, choice.precision, threads=threads, streams=streams,
                                                    graph=choice.graph)
        return task_class(task)(bundle=bundle, session=session, tokenizer=tokenizer, batch_size=batch_size,
                                streams=streams, stream_session=stream_session if streams > 1 else None)

    provider, precision = choice.provider, choice.precision
    settings = SessionSettings(threads=threads, optimization=optimization, optimized_cache=optimized_cache,
                               cache_dir=Path(cache_dir) if cache_dir else None, io_binding=io_binding,
                               disabled_optimizers=_as_tuple(disabled_optimizers))
    plan, chosen, file_precision = _plan(bundle, provider, precision, batch_size=batch_size, device_id=device_id,
                                         tensorrt_cache_dir=tensorrt_cache_dir)
    if choice.graph and plan.device == "cpu" and bundle.manifest.variant(choice.graph).precision == chosen:
        file_precision = choice.graph  # the graph tuning measured fastest here
    if streams > 1 and plan.device != "cpu":
        raise InputError(f"streams={streams} applies to the CPU provider only; on {plan.name} one stream keeps "
                         "the device busy: leave streams at 1 and raise batch_size instead")
    session = OrtEngine(bundle.path, bundle.manifest, chosen, plan, settings, file_precision=file_precision)
    if session.plan.name != plan.name:  # provider="auto": the GPU provider did not load; re-plan for the CPU
        plan = session.plan
        cpu_precision = bundle.choose_precision(precision, device="cpu")
        logger.warning("provider auto: %s did not load, so %s runs on the CPU at %s%s (%s)", PROVIDERS["cuda"],
                       bundle.manifest.name, cpu_precision,
                       f" instead of {chosen}" if cpu_precision != chosen else " as asked (slow there)", plan.notes[-1])
        chosen, file_precision = cpu_precision, _graph_for(bundle, cpu_precision, "cpu")
        session = OrtEngine(bundle.path, bundle.manifest, chosen, plan, settings, file_precision=file_precision)

    def stream_session() -> Engine:
        return OrtEngine(bundle.path, bundle.manifest, chosen, plan, replace(settings, threads=1),
                            file_precision=file_precision)

    return task_class(task)(bundle=bundle, session=session, tokenizer=tokenizer, batch_size=batch_size,
                            streams=streams, stream_session=stream_session if streams > 1 else None)


def _openvino_engines(bundle: Bundle, precision: str, *, threads: int | None, streams: int,
                      graph: str | None = None) -> tuple[Engine, Callable[[], Engine]]:
    from .engines.openvino import OpenVinoEngine

    session = OpenVinoEngine(bundle.path, bundle.manifest, precision, threads=threads, streams=1, hint="latency",
                             graph=graph)

    def stream_session() -> Engine:
        # One compiled model with ``streams`` streams over the same threads; each stream thread gets its
        # own infer request, so the batches run side by side.
        return OpenVinoEngine(bundle.path, bundle.manifest, precision, threads=threads, streams=streams,
                              hint="throughput", graph=graph)

    return session, stream_session
