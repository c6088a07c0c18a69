"""The variants of a bundle: the fp32 export, its fused and flash-attention graphs, fp16 and both int8 files,
each validated against PyTorch and placed in the staging directory with its SHA-256."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from distilrt.runtime.errors import ParityError
from distilrt.runtime.manifest import Variant, sha256_file
from distilrt.runtime.registry import VARIANT_FILES

from . import calibration as calibration_io
from . import evaluate, static_int8
from .attention import rewrite_for_flash_attention
from .convert import export_fp32
from .dynamic_int8 import INT8_SOURCE_ORDER, build_int8
from .fp16 import convert_fp16
from .load import Checkpoint
from .optimize import fuse
from .progress import Steps
from .quantize import QuantizationPreset
from .validate import check_variant, reference_batches

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltVariants:
    """What :func:`build_variants` placed: the graph's input and output names, the variants and extra graphs."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    variants: dict[str, Variant]
    graphs: dict[str, Variant]  # extra graphs beside the standard files, keyed "<precision>-<graph>"


def _io_names(path: Path) -> tuple[list[str], list[str]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers], [o.name for o in graph.output]


def build_variants(
    checkpoint: Checkpoint,
    wanted: tuple[str, ...],
    staging: Path,
    work: Path,
    steps: Steps,
    *,
    opset: int | None,
    quantization: QuantizationPreset | None,
    int8_policy: str,
    calibration: calibration_io.CalibrationSet | None = None,
    static_methods: Iterable[str] | None = None,
) -> BuiltVariants:
    """Build, validate and place every requested variant and extra graph; nothing here is timed.

    What is built depends only on the checkpoint and the options, never on the exporting machine:
    which graph runs fastest is measured on the host that serves the bundle.
    """
    (work / "fp32").mkdir()
    with steps.step("export", "PyTorch -> ONNX fp32 (optimum)"):
        plain = export_fp32(checkpoint, work / "fp32", opset=opset)
    inputs, outputs = _io_names(plain)

    graphs: dict[str, Path] = {"plain": plain}
    gpu_ops: dict[str, int] = {}
    with steps.step("optimise", "ORT transformer fusions"):
        # The CPU graphs leave out the fusions whose CPU kernels are the slower (see optimize.fuse); the
        # fused fp16 graph, meant for ONNX Runtime's CUDA provider, gets every fusion.
        fused_ops = _fuse_or_nothing(plain, work / "fused.onnx", checkpoint.config, for_cpu=True)
        if fused_ops:
            graphs["fused"] = work / "fused.onnx"
            if _flash_or_nothing(work / "fused.onnx", work / "flash.onnx"):
                graphs["flash"] = work / "flash.onnx"
        if "fp16" in wanted:
            gpu_ops = _fuse_or_nothing(plain, work / "fused_gpu.onnx", checkpoint.config, for_cpu=False)
    steps.note("fused: " + (", ".join(f"{k}x{v}" for k, v in fused_ops.items()) or "nothing")
               + ("; flash-attention graph built" if "flash" in graphs else ""))

    with steps.step("reference", "PyTorch outputs (padded text batch + max-length batch)"):
        batches = reference_batches(checkpoint)
        mask_token_id = _mask_token_id(checkpoint)
    evalset = None
    if set(wanted) - {"fp32"}:  # every reduced precision is measured on the built-in evaluation set
        with steps.step("reference", "PyTorch outputs on the built-in evaluation set"):
            evalset = evaluate.build(checkpoint)

    def validate(precision: str, path: Path) -> dict[str, Any]:
        with steps.step("validate", f"{precision} {path.name}"):
            return check_variant(precision, path, checkpoint, batches, mask_token_id=mask_token_id)

    def place(precision: str, path: Path, relative: str, parity: dict[str, Any], details: dict[str, Any],
              *, measure: bool = True) -> Variant:
        if measure and evalset is not None and precision != "fp32" and "agreement" not in parity:
            with steps.step("agreement", f"{precision} on {evalset.size} evaluation items"):
                parity["agreement"] = evaluate.measure(path, evalset)
        steps.note(f"{relative}: {_parity_summary(parity)}")
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        return Variant(precision, relative, destination.stat().st_size, sha256_file(destination), parity=parity,
                       details=details)

    variants: dict[str, Variant] = {}
    extra: dict[str, Variant] = {}
    if "fp32" in wanted:
        variants["fp32"] = place("fp32", plain, VARIANT_FILES["fp32"], validate("fp32", plain),
                                 {"graph": "plain", "fused_operators": {}})
        for label, relative in EXTRA_GRAPH_FILES.items():
            if label not in graphs:
                continue
            try:
                parity = validate("fp32", graphs[label])
            except ParityError as exc:  # an optional graph: the bundle is whole without it
                logger.warning("the %s fp32 graph fails validation (%s); leaving it out", label, exc)
                steps.note(f"{label} graph left out: {exc}")
                del graphs[label]  # nor is int8 built from it
                continue
            extra[f"fp32-{label}"] = place("fp32", graphs[label], relative, parity,
                                          {"graph": label, "fused_operators": _graph_ops(label, fused_ops)})
    if "fp16" in wanted:
        # The standard file is the plain graph in fp16 (standard operators: TensorRT and any engine); ONNX
        # Runtime's fully fused graph in fp16 rides along for its CUDA provider (see export.fp16).
        with steps.step("convert", "fp16"):
            fp16_path = work / "model_fp16.onnx"
            kept = convert_fp16(plain, fp16_path)
        variants["fp16"] = place("fp16", fp16_path, VARIANT_FILES["fp16"], validate("fp16", fp16_path),
                                 {"graph": "plain", "fused_operators": {}, "fp32_ops": kept, "io_types": "float32",
                                  "why": "standard ONNX operators with the precision in the graph: TensorRT 10 and 11"})
        if gpu_ops:
            fused_fp16 = work / "model_fp16_fused.onnx"
            with steps.step("convert", "fp16 fused"):
                kept = convert_fp16(work / "fused_gpu.onnx", fused_fp16)
            try:
                parity = validate("fp16", fused_fp16)
            except ParityError as exc:  # an optional graph: the bundle is whole without it
                logger.warning("the fused fp16 graph fails validation (%s); leaving it out", exc)
                steps.note(f"fused fp16 graph left out: {exc}")
            else:
                extra["fp16-fused"] = place(
                    "fp16", fused_fp16, FP16_FUSED_FILE, parity,
                    {"graph": "fused", "fused_operators": gpu_ops, "fp32_ops": kept, "io_types": "float32",
                     "why": "ONNX Runtime's CUDA provider runs the fused operators in fp16",
                     "agreement": "not measured at export: ONNX Runtime's CPU provider lacks most of its fp16 "
                                  "kernels, so a CPU run would not compute what the GPU computes; the 12-text "
                                  "check against PyTorch is recorded"},
                    measure=False)
    if "int8" in wanted:
        label = next(g for g in INT8_SOURCE_ORDER if g in graphs)
        int8 = build_int8(checkpoint, label, graphs[label], work, steps, batches, mask_token_id,
                          quantization or QuantizationPreset.default(),
                          ladder=int8_policy == "accuracy", evalset=evalset)
        variants["int8"] = place("int8", int8.path, VARIANT_FILES["int8"], int8.figures, int8.details)
    if "int8-static" in wanted and calibration is not None and evalset is not None:
        reader = calibration_io.reader_for(checkpoint, calibration, inputs)
        path, details, figures = static_int8.build(plain, work, reader, calibration, evalset, steps,
                                                   methods=tuple(static_methods or ()) or None,
                                                   fallback=int8_policy == "accuracy")
        parity = {**validate("int8-static", path), "agreement": figures}
        variants["int8-static"] = place("int8-static", path, VARIANT_FILES["int8-static"], parity, details)
    return BuiltVariants(tuple(inputs), tuple(outputs), variants, extra)


#: Extra fp32 graphs a bundle carries beside ``onnx/model.onnx`` (optimum's plain export), and their files.
EXTRA_GRAPH_FILES: dict[str, str] = {"fused": "onnx/model_fused.onnx", "flash": "onnx/model_flash.onnx"}
#: ONNX Runtime's fully fused graph in fp16 (every fusion, for its CUDA provider), beside ``model_fp16.onnx``.
FP16_FUSED_FILE = "onnx/model_fp16_fused.onnx"


def _fuse_or_nothing(plain: Path, out: Path, config: dict[str, Any], *, for_cpu: bool) -> dict[str, int]:
    """:func:`fuse`, or {} when the optimizer fails: that costs speed, not correctness."""
    try:
        return fuse(plain, out, config, for_cpu=for_cpu)
    except Exception as exc:
        logger.warning("graph optimisation failed (%s); keeping the unfused graph", exc)
        return {}


def _graph_ops(graph: str, fused_ops: dict[str, int]) -> dict[str, int]:
    """The fused operators of graph ``graph`` ("plain", "fused" or "flash")."""
    if graph == "plain":
        return {}
    if graph == "flash":
        return {("MultiHeadAttention" if k == "Attention" else k): v for k, v in fused_ops.items()}
    return fused_ops


def _flash_or_nothing(fused: Path, out: Path) -> bool:
    """:func:`rewrite_for_flash_attention`; False when it does not apply or fails (a graph less)."""
    try:
        return rewrite_for_flash_attention(fused, out) > 0
    except Exception as exc:
        logger.warning("flash-attention rewrite failed (%s); no flash graph", exc)
        return False


def _mask_token_id(checkpoint: Checkpoint) -> int | None:
    if checkpoint.task != "fill-mask":
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint.path)).mask_token_id


def _parity_summary(parity: dict[str, Any]) -> str:
    parts = [f"max|Δ| {name}={value:.2e}" for name, value in parity.get("max_abs_diff", {}).items()]
    if "top1_agreement" in parity:
        parts.append(f"top-1 agreement {parity['top1_agreement']:.0%} of {parity['top1_compared']}")
    if "embedding_cosine_min" in parity:
        parts.append(f"cosine min {parity['embedding_cosine_min']:.5f}")
    if "agreement" in parity:
        parts.append(evaluate.summary(parity["agreement"]))
    return ", ".join(parts)
