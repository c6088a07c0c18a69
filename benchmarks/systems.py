"""The systems under test, each behind one small interface: run a task's inputs at a batch size.

Peers are what a user would otherwise run: the ``transformers`` pipeline on PyTorch fp32 (eager),
the same with ``torch.ao.quantization.quantize_dynamic`` int8 Linear layers, on PyTorch bf16
(``torch_dtype=torch.bfloat16``, the AMX path), optimum's ``ORTModelFor*`` (fp32 export, and int8 from
``ORTQuantizer``'s preset for this CPU), and OpenVINO on optimum's plain export (default precision, and
int8 from ``nncf.quantize`` defaults; see :mod:`distilrt.benchmarks.openvino`), each inside the
``transformers`` pipeline.  distilrt rows go through ``distilrt.runtime.pipeline``: one row per engine
and precision (ONNX Runtime fp32 / fp16 / int8, OpenVINO bf16 / static int8), and ``distilrt-auto``,
``precision="auto", provider="auto"``, which runs what ``distilrt tune`` chose on this host (the
runner tunes the bundle first when this host's profile has no entry for it).  Every system gets the
same thread budget.  A system whose packages (or CPU features) are missing is skipped with the reason
(:func:`unavailable`).
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
    family: str  # "transformers", "optimum", "openvino" or "distilrt"
    precision: str  # "default": whatever the engine picks for an fp32 graph on this host
    provider: str = "cpu"  # distilrt rows: the pipeline's provider ("auto" with precision "auto": tuned)


SYSTEMS: dict[str, SystemSpec] = {spec.key: spec for spec in (
    SystemSpec("torch-fp32", "transformers pipeline, PyTorch fp32 eager", "transformers", "fp32"),
    SystemSpec("torch-int8", "transformers pipeline, PyTorch dynamic int8", "transformers", "int8"),
    SystemSpec("torch-bf16", "transformers pipeline, PyTorch bf16 (torch_dtype=torch.bfloat16)", "transformers",
               "bf16"),
    SystemSpec("optimum-fp32", "transformers pipeline, optimum ORTModel fp32", "optimum", "fp32"),
    SystemSpec("optimum-int8", "transformers pipeline, optimum ORTModel int8 (ORTQuantizer)", "optimum", "int8"),
    SystemSpec("openvino-default", "transformers pipeline, OpenVINO on the plain fp32 ONNX, default precision",
               "openvino", "default"),
    SystemSpec("openvino-int8", "transformers pipeline, OpenVINO int8 (nncf.quantize defaults on the plain ONNX)",
               "openvino", "int8"),
    SystemSpec("distilrt-fp32", "distilrt fp32 (ONNX Runtime)", "distilrt", "fp32"),
    SystemSpec("distilrt-fp16", "distilrt fp16 (ONNX Runtime)", "distilrt", "fp16"),
    SystemSpec("distilrt-int8", "distilrt int8 (ONNX Runtime, dynamic)", "distilrt", "int8"),
    SystemSpec("distilrt-ov-bf16", "distilrt bf16 (OpenVINO)", "distilrt", "bf16", "openvino"),
    SystemSpec("distilrt-ov-int8", "distilrt int8 (OpenVINO, static QDQ)", "distilrt", "int8-static", "openvino"),
    SystemSpec("distilrt-auto", "distilrt tuned (precision and provider auto: this host's profile)", "distilrt",
               "auto", "auto"),
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
        #: distilrt rows: what the pipeline runs on (see :func:`describe_engine`).
        self.engine: dict[str, Any] = {}

    def run(self, inputs: list[Any], batch_size: int, streams: int = 1) -> list[Any]:
        if streams not in self.streams:
            raise ValueError(f"{self.spec.key} runs with streams {self.streams}, not {streams}")
        return self._run(inputs, batch_size) if streams == 1 else self._run(inputs, batch_size, streams)

    def close(self) -> None:
        if self._release:
            self._release()
        self._run = None  # type: ignore[assignment]
        gc.collect()


def unavailable(spec: SystemSpec) -> str | None:
    """Why ``spec`` cannot run here (a missing optional package), or None."""
    if spec.family == "openvino":
        from .openvino import unavailable as openvino_unavailable

        return openvino_unavailable()
    if spec.family == "distilrt":
        missing = distilrt_available()
        if missing or spec.provider != "openvino":
            return missing
        from distilrt.runtime.engines import openvino as ov_engine

        if not ov_engine.available():
            return "openvino is not installed; install it with: pip install 'distilrt[openvino]'"
        if spec.precision == "bf16" and not ov_engine.has_native_bf16():
            return "the CPU has no AMX-BF16 / AVX-512-BF16, so OpenVINO bf16 would be emulated"
    return None


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
        dtype = {"torch_dtype": torch.bfloat16} if spec.precision == "bf16" else {}
        net = getattr(transformers, _AUTO_CLASSES[model.task]).from_pretrained(str(source), **dtype).eval()
        if spec.precision == "int8":
            net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    elif spec.family == "openvino":
        source = paths["optimum"]
        net = openvino_model(spec, model, source, threads=threads)
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


def openvino_model(spec: SystemSpec, model: BenchModel, optimum_dir: Path, *, threads: int) -> Any:
    """The OpenVINO peer's model for the ``transformers`` pipeline (int8 quantised once, then cached)."""
    from transformers import AutoConfig

    from . import openvino

    return openvino.pipeline_model(openvino.compile_model(openvino_file(spec, model, optimum_dir), threads=threads),
                                   AutoConfig.from_pretrained(str(optimum_dir)), model.task)


def openvino_file(spec: SystemSpec, model: BenchModel, optimum_dir: Path) -> Path:
    """The file OpenVINO compiles for ``spec``: optimum's plain export, or its NNCF int8 IR."""
    from . import openvino

    plain = optimum_dir / "model.onnx"
    if spec.precision != "int8":
        return plain
    return openvino.quantized_model(plain, calibration_feeds(model, optimum_dir), cache_dir=optimum_dir / "openvino")


def calibration_feeds(model: BenchModel, tokenizer_dir: Path) -> list[dict[str, np.ndarray]]:
    """One tokenized input per item of the model's throughput workload, batch 1, as NNCF samples them."""
    from transformers import AutoTokenizer

    from . import workloads

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if model.task == "question-answering":
        encoded = [tokenizer(p.question, p.context, truncation="only_second", max_length=384, return_tensors="np")
                   for p in workloads.throughput_pairs()]
    else:
        texts = (workloads.fill_mask_texts(tokenizer.mask_token, workloads.FILL_MASK_BATCH)
                 if model.task == "fill-mask" else workloads.sentences()[:300])
        encoded = [tokenizer(text, return_tensors="np") for text in texts]
    return [{k: np.asarray(v, dtype=np.int64) for k, v in e.items()} for e in encoded]


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
            return mean_pooled(states, lengths)
    return run


def mean_pooled(states: list[Any], lengths: list[int]) -> list[np.ndarray]:
    """Each text's hidden states (a torch tensor, [1, tokens, hidden], any float dtype) averaged over its own
    tokens and L2-normalised, in float32 (numpy has no bfloat16)."""
    pooled = np.stack([s[0, :n].float().mean(0).numpy() for s, n in zip(states, lengths)])
    return list(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))


# -- distilrt ------------------------------------------------------------------------------------

def _load_distilrt(spec: SystemSpec, model: BenchModel, bundle: Path, *, threads: int) -> Runner:
    from distilrt.runtime import pipeline

    made: dict[int, Any] = {}
    tuned = spec.precision == "auto" and spec.provider == "auto"
    # One stream per thread at most: each stream runs on one core.  The tuned row runs the profile's
    # threads and streams, as a user's pipeline(precision="auto", provider="auto") does.
    stream_options = tuple(sorted({1, threads})) if threads > 1 and not tuned else (1,)

    def get(batch_size: int, streams: int) -> Any:
        # One pipeline per stream count; its batch size is changed in place.
        if streams not in made:
            chosen = {} if tuned else {"threads": threads, "streams": streams}
            made[streams] = pipeline(model.task, model=str(bundle), precision=spec.precision, provider=spec.provider,
                                     batch_size=batch_size, **chosen)
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
            return list(get(batch_size, streams)(texts, pooling="auto", return_tensors=True))

    runner = Runner(spec, model, run, made.clear, streams=stream_options)
    runner.engine = describe_engine(get(1, 1))
    return runner


def describe_engine(task: Any) -> dict[str, Any]:
    """What a distilrt pipeline runs on: engine, precision, file, threads, streams (for the result's record)."""
    info = task.session.describe()
    return {"engine": info.engine, "precision": info.precision, "file": info.file, "threads": info.threads,
            "streams": task.streams, "providers": list(info.providers)}


def distilrt_available() -> str | None:
    """None when ``distilrt.runtime.pipeline`` can be imported, else the reason it cannot."""
    try:
        from distilrt.runtime import pipeline  # noqa: F401
    except ImportError as exc:
        return f"distilrt.runtime.pipeline is not importable ({exc})"
    return None
