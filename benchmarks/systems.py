"""The systems under test, each behind one small interface: run a task's inputs at a batch size.

Peers are what a user would otherwise run: the ``transformers`` pipeline on PyTorch fp32 (eager),
the same with ``torch.ao.quantization.quantize_dynamic`` int8 Linear layers, and optimum's
``ORTModelFor*`` (fp32 export, and int8 from ``ORTQuantizer``'s preset for this CPU) inside the
``transformers`` pipeline.  distilrt rows go through ``distilrt.runtime.pipeline``.  Every system
gets the same thread budget.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .models import BenchModel
from .workloads import QAPair


@dataclass(frozen=True)
class SystemSpec:
    key: str
    label: str
    family: str  # "transformers", "optimum" or "distilrt"
    precision: str


SYSTEMS: dict[str, SystemSpec] = {spec.key: spec for spec in (
    SystemSpec("torch-fp32", "transformers pipeline, PyTorch fp32 eager", "transformers", "fp32"),
    SystemSpec("torch-int8", "transformers pipeline, PyTorch dynamic int8", "transformers", "int8"),
    SystemSpec("optimum-fp32", "transformers pipeline, optimum ORTModel fp32", "optimum", "fp32"),
    SystemSpec("optimum-int8", "transformers pipeline, optimum ORTModel int8 (ORTQuantizer)", "optimum", "int8"),
    SystemSpec("distilrt-fp32", "distilrt fp32", "distilrt", "fp32"),
    SystemSpec("distilrt-fp16", "distilrt fp16", "distilrt", "fp16"),
    SystemSpec("distilrt-int8", "distilrt int8", "distilrt", "int8"),
)}


class Runner:
    """A loaded system: ``run(inputs, batch_size)`` does one full pass of a workload, end to end."""

    def __init__(self, spec: SystemSpec, model: BenchModel, run: Callable[..., list[Any]],
                 release: Callable[[], None] | None = None, *, streams: tuple[int, ...] = (1,)) -> None:
        self.spec = spec
        self.model = model
        self._run = run
        self._release = release
        #: Stream counts the system can run bulk work with (tried alongside batch sizes for throughput).
        self.streams = streams

    def run(self, inputs: list[Any], batch_size: int, streams: int = 1) -> list[Any]:
        if streams not in self.streams:
            raise ValueError(f"{self.spec.key} runs with streams {self.streams}, not {streams}")
        return self._run(inputs, batch_size) if streams == 1 else self._run(inputs, batch_size, streams)

    def close(self) -> None:
        if self._release:
            self._release()
        self._run = None  # type: ignore[assignment]
        gc.collect()


def load(spec: SystemSpec, model: BenchModel, paths: dict[str, Path], *, threads: int) -> Runner:
    """Load ``spec`` for ``model`` (``paths`` from :func:`distilrt.benchmarks.models.prepare`)."""
    if spec.family == "distilrt":
        return _load_distilrt(spec, model, paths["bundle"], threads=threads)
    return _load_peer(spec, model, paths, threads=threads)


# -- peers ---------------------------------------------------------------------------------------

def _load_peer(spec: SystemSpec, model: BenchModel, paths: dict[str, Path], *, threads: int) -> Runner:
    import torch
    import transformers
    from transformers import AutoTokenizer

    torch.set_num_threads(threads)
    if spec.family == "transformers":
        source = paths["checkpoint"]
        net = getattr(transformers, _AUTO_CLASSES[model.task]).from_pretrained(str(source)).eval()
        if spec.precision == "int8":
            net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        import optimum.onnxruntime as ort_optimum

        from .gemm import session_options
        from .models import ORT_MODEL_CLASSES

        source = paths["optimum"]
        cls = getattr(ort_optimum, ORT_MODEL_CLASSES[model.task])
        file_name = "model_quantized.onnx" if spec.precision == "int8" else "model.onnx"
        net = cls.from_pretrained(str(source), file_name=file_name, session_options=session_options(threads),
                                  provider="CPUExecutionProvider")
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    pipe = transformers.pipeline(model.task, model=net, tokenizer=tokenizer, device="cpu")
    return Runner(spec, model, _peer_call(pipe, model, tokenizer))


_AUTO_CLASSES = {
    "question-answering": "AutoModelForQuestionAnswering",
    "fill-mask": "AutoModelForMaskedLM",
    "feature-extraction": "AutoModel",
    "text-classification": "AutoModelForSequenceClassification",
}


def _peer_call(pipe: Any, model: BenchModel, tokenizer: Any) -> Callable[[list[Any], int], list[Any]]:
    import torch

    if model.task == "question-answering":
        def run(pairs: list[QAPair], batch_size: int) -> list[Any]:
            with torch.inference_mode():
                out = pipe(question=[p.question for p in pairs], context=[p.context for p in pairs],
                           batch_size=batch_size)
            return out if isinstance(out, list) else [out]
    elif model.task == "fill-mask":
        def run(texts: list[str], batch_size: int) -> list[Any]:
            with torch.inference_mode():
                return pipe(texts, top_k=5, batch_size=batch_size)
    else:
        def run(texts: list[str], batch_size: int) -> list[Any]:
            # Mean pooling over each text's own tokens + L2 normalisation, as all-MiniLM-L6-v2 is used.
            lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
            with torch.inference_mode():
                states = pipe(texts, return_tensors=True, batch_size=batch_size)
            pooled = np.stack([s[0, :n].mean(0).numpy() for s, n in zip(states, lengths)])
            return list(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return run


# -- distilrt ------------------------------------------------------------------------------------

def _load_distilrt(spec: SystemSpec, model: BenchModel, bundle: Path, *, threads: int) -> Runner:
    from distilrt.runtime import pipeline

    made: dict[int, Any] = {}
    # One stream per thread at most: each stream runs on one core.
    stream_options = tuple(sorted({1, threads})) if threads > 1 else (1,)

    def get(batch_size: int, streams: int) -> Any:
        # One pipeline per stream count; its batch size is changed in place.
        if streams not in made:
            made[streams] = pipeline(model.task, model=str(bundle), precision=spec.precision, provider="cpu",
                                     batch_size=batch_size, threads=threads, streams=streams)
        made[streams].batch_size = batch_size
        return made[streams]

    if model.task == "question-answering":
        def run(pairs: list[QAPair], batch_size: int, streams: int = 1) -> list[Any]:
            out = get(batch_size, streams)(question=[p.question for p in pairs], context=[p.context for p in pairs])
            return out if isinstance(out, list) else [out]
    elif model.task == "fill-mask":
        def run(texts: list[str], batch_size: int, streams: int = 1) -> list[Any]:
            return get(batch_size, streams)(texts, top_k=5)
    else:
        def run(texts: list[str], batch_size: int, streams: int = 1) -> list[Any]:
            return list(get(batch_size, streams)(texts))

    return Runner(spec, model, run, made.clear, streams=stream_options)


def distilrt_available() -> str | None:
    """None when ``distilrt.runtime.pipeline`` can be imported, else the reason it cannot."""
    try:
        from distilrt.runtime import pipeline  # noqa: F401
    except ImportError as exc:
        return f"distilrt.runtime.pipeline is not importable ({exc})"
    return None
