"""OpenVINO peers, as an optimum-intel user would run them: optimum's plain ONNX export compiled by OpenVINO.

Two rows: the fp32 file as is (OpenVINO's CPU plugin picks its default inference precision: bf16 on
hosts with AMX or AVX-512 BF16, f32 elsewhere), and int8 from ``nncf.quantize`` with its defaults
(300-sample calibration subset, performance preset) on the same file.  Both compile with the latency
hint optimum-intel sets and the run's thread budget.  End to end they run inside the ``transformers``
pipeline through :class:`OpenVINOModel`, as optimum's ``ORTModel`` does; session only, the compiled
model alone.  ``openvino`` and ``nncf`` are imported only here, when the rows are asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The OpenVINO rows a benchmark run can include: system key -> how the graph is made.
PRECISIONS = {"openvino-default": "fp32 ONNX as is", "openvino-int8": "nncf.quantize defaults"}


def unavailable() -> str | None:
    """None when OpenVINO and NNCF import, else why the OpenVINO rows are skipped (with the fix)."""
    missing = []
    for name in ("openvino", "nncf"):
        try:
            __import__(name)
        except Exception as exc:  # an import can fail with more than ImportError (native libraries)
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    if missing:
        return f"cannot import {', '.join(missing)}; install the bench extra: pip install 'distilrt[bench]'"
    return None


def default_precision() -> str:
    """What OpenVINO's CPU plugin runs an fp32 graph in by default on this host ("bf16" or "f32")."""
    import openvino as ov

    hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(getattr(hint, "type_name", ""), hint.to_string())


def quantized_model(onnx_path: Path, calibration: list[dict[str, np.ndarray]], *, cache_dir: Path) -> Path:
    """``nncf.quantize`` (defaults) of ``onnx_path`` as OpenVINO IR under ``cache_dir``; built once, then reused."""
    import nncf
    import openvino as ov

    target = cache_dir / f"openvino_int8_nncf{nncf.__version__}.xml"
    if target.is_file():
        return target
    model = ov.Core().read_model(str(onnx_path))
    names = [port.get_any_name() for port in model.inputs]
    items = [{k: v for k, v in feeds.items() if k in names} for feeds in calibration]
    quantized = nncf.quantize(model, nncf.Dataset(items))
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.stem + ".partial.xml")
    ov.save_model(quantized, str(staging))
    staging.with_suffix(".bin").replace(target.with_suffix(".bin"))
    staging.replace(target)
    return target


def compile_model(model_path: Path, *, threads: int) -> Any:
    """OpenVINO's CPU compiled model of ``model_path`` (ONNX or IR): latency hint, ``threads`` threads,
    the plugin's default inference precision."""
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(str(model_path)), "CPU",
                              {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})


def infer(compiled: Any, feeds: dict[str, np.ndarray], request: Any | None = None) -> dict[str, np.ndarray]:
    """Run ``compiled`` on the feeds it declares; outputs keyed by name."""
    request = request or compiled.create_infer_request()
    names = {port.get_any_name() for port in compiled.inputs}
    result = request.infer({k: v for k, v in feeds.items() if k in names})
    return {port.get_any_name(): np.asarray(result[port]) for port in compiled.outputs}


def pipeline_model(compiled: Any, config: Any, task: str) -> Any:
    """``compiled`` wrapped so that ``transformers.pipeline`` runs it like a PyTorch model."""
    cls = _model_class()
    # Named after the checkpoint's architecture, so the pipeline's supported-model check recognises it.
    named = type((getattr(config, "architectures", None) or [cls.__name__])[0], (cls,), {})
    return named(compiled, config, task)


_CLASS: list[type] = []


def _model_class() -> type:
    if _CLASS:
        return _CLASS[0]
    import torch
    from optimum.modeling_base import OptimizedModel
    from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, QuestionAnsweringModelOutput

    class OpenVINOModel(OptimizedModel):
        """An OpenVINO compiled model behind the interface the ``transformers`` pipelines call."""

        def __init__(self, compiled: Any, config: Any, task: str) -> None:
            super().__init__(compiled, config)
            self.compiled = compiled
            self.request = compiled.create_infer_request()
            self.task = task

        @property
        def device(self) -> Any:
            return torch.device("cpu")

        @property
        def dtype(self) -> Any:
            return torch.float32

        def to(self, *args: Any, **kwargs: Any) -> "OpenVINOModel":
            return self

        def eval(self) -> "OpenVINOModel":
            return self

        def can_generate(self) -> bool:
            return False

        def _save_pretrained(self, save_directory: Any) -> None:
            raise NotImplementedError("a benchmark peer is not saved")

        @classmethod
        def _from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("a benchmark peer is built from a compiled model")

        def forward(self, **inputs: Any) -> Any:
            feeds = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in inputs.items() if v is not None}
            out = {k: torch.from_numpy(v) for k, v in infer(self.compiled, feeds, self.request).items()}
            if self.task == "question-answering":
                return QuestionAnsweringModelOutput(start_logits=out["start_logits"], end_logits=out["end_logits"])
            if self.task == "fill-mask":
                return MaskedLMOutput(logits=out["logits"])
            return BaseModelOutput(last_hidden_state=out["last_hidden_state"])

    _CLASS.append(OpenVINOModel)
    return OpenVINOModel
