"""export_model: checkpoint -> validated ONNX bundle (fp32, fp16, int8)."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

from distilrt.runtime.errors import ParityError, UnknownNameError
from distilrt.runtime.hostinfo import cpu_info, package_versions
from distilrt.runtime.manifest import Manifest, Variant, sha256_file
from distilrt.runtime.registry import ARCHITECTURES, PRECISIONS, VARIANT_FILES, check_precision

from . import bundle as bundle_io
from . import calibration as calibration_io
from . import evaluate, static_int8
from .attention import rewrite_for_flash_attention
from .convert import DEFAULT_OPSET, export_fp32
from .fp16 import convert_fp16
from .load import Checkpoint, resolve_checkpoint
from .optimize import fuse
from .progress import Steps
from .quantize import QuantizationPreset, quantize
from .validate import check_variant, reference_batches

logger = logging.getLogger(__name__)

_VERSIONED = ("distilrt", "onnx", "onnxruntime", "torch", "transformers", "optimum", "optimum-onnx", "tokenizers")


@dataclass(frozen=True)
class ExportResult:
    name: str
    path: Path
    manifest: Manifest
    step_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0


def _host() -> dict[str, Any]:
    import os

    cpu, _ = cpu_info()
    return {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def _normalise_precisions(precisions: Iterable[str] | str) -> tuple[str, ...]:
    items = precisions.split(",") if isinstance(precisions, str) else list(precisions)
    chosen = tuple(dict.fromkeys(check_precision(p.strip()) for p in items if p.strip()))
    if not chosen:
        raise UnknownNameError(f"no precision given; choose from {', '.join(PRECISIONS)}")
    return tuple(p for p in PRECISIONS if p in chosen)


def export_model(
    model: str,
    output: str | Path,
    *,
    precisions: Iterable[str] | str = PRECISIONS,
    task: str = "auto",
    opset: int | None = None,
    force: bool = False,
    revision: str | None = None,
    quantization: QuantizationPreset | None = None,
    name: str | None = None,
    int8_policy: str = "accuracy",
    calibration_data: str | Path | None = None,
    static_methods: Iterable[str] | None = None,
    progress: TextIO | None = None,
) -> ExportResult:
    """Export ``model`` (hub id or local checkpoint directory) to ``output/<name>`` and validate it.

    Every requested variant is checked against PyTorch; an fp32 or fp16 variant outside tolerance
    raises :class:`~distilrt.runtime.errors.ParityError` and nothing is written.  ``progress`` (e.g.
    ``sys.stderr``) receives a line per step.  ``name`` overrides the bundle directory name (default:
    the last component of ``model``).  ``int8_policy="accuracy"`` keeps the most-quantised int8 graph
    that reaches the agreement target (top-1 agreement 100%, or embedding cosine >= 0.99), falling back
    to keeping sensitive layers in fp32; ``"speed"`` keeps the fully quantised graph whatever its
    agreement (still recorded).  ``calibration_data`` (JSON Lines or plain text, one example a line)
    replaces the built-in calibration set of the static int8 variant; ``static_methods`` limits its
    calibration methods (default: every installed one, see :mod:`~distilrt.export.static_int8`).

    Nothing is timed: the bundle is the same whatever machine exports it (graph files byte for byte).
    ``onnx/model.onnx`` is optimum's plain export; with fp32 the bundle also carries the ORT-fused and
    flash-attention graphs (manifest ``graphs``) for the host to choose among by measurement.
    """
    started = time.perf_counter()
    wanted = _normalise_precisions(precisions)
    if int8_policy not in INT8_POLICIES:
        raise UnknownNameError(f"unknown int8 policy {int8_policy!r}; known: {', '.join(INT8_POLICIES)}")
    output = Path(output).expanduser()
    name = bundle_io.bundle_name(name or model)
    steps = Steps(name, stream=progress)
    target = bundle_io.prepare_output(output, name, force=force)
    with steps.step("resolve", model):
        checkpoint = resolve_checkpoint(model, task=task, revision=revision)
    steps.note(f"task={checkpoint.task} architecture={checkpoint.architecture} max_len={checkpoint.max_sequence_length}")

    bundle_io.collect_leftovers(output, name)
    staging = bundle_io.staging_dir(output, name)
    work = bundle_io.work_dir()
    try:
        calibration = calibration_io.load(checkpoint, calibration_data) if "int8-static" in wanted else None
        variants = _build_variants(checkpoint, wanted, staging, work, steps, opset=opset, quantization=quantization,
                                   int8_policy=int8_policy, calibration=calibration, static_methods=static_methods)
        bundle_io.copy_support_files(checkpoint.path, work / "fp32", staging)
        inputs, outputs, graphs = variants.pop("_inputs"), variants.pop("_outputs"), variants.pop("_graphs")
        manifest = Manifest(
            name=name,
            task=checkpoint.task,
            architecture=checkpoint.architecture,
            model_type=checkpoint.model_type,
            source={"model": checkpoint.source, "path": str(checkpoint.path), "revision": checkpoint.revision,
                    "from_hub": checkpoint.from_hub, "seed": checkpoint.spec.name if checkpoint.spec else None},
            max_sequence_length=checkpoint.max_sequence_length,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            opset=opset or DEFAULT_OPSET,
            versions=package_versions(_VERSIONED),
            variants=variants,
            graphs=graphs,
            tokenizer={"kind": ARCHITECTURES.get(checkpoint.model_type).tokenizer_kind, "file": "tokenizer.json"},
            pooling=bundle_io.sentence_pooling(checkpoint.path),
            host=_host(),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        with steps.step("write", str(target)):
            manifest = bundle_io.commit(staging, target, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(name, target, manifest, dict(steps.seconds), time.perf_counter() - started)


def _io_names(path: Path) -> tuple[list[str], list[str]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers], [o.name for o in graph.output]


def _build_variants(
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
) -> dict[str, Any]:
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

    def place(precision: str, path: Path, relative: str, parity: dict[str, Any], details: dict[str, Any]) -> Variant:
        if evalset is not None and precision != "fp32" and "agreement" not in parity:
            with steps.step("agreement", f"{precision} on {evalset.size} evaluation items"):
                parity["agreement"] = evaluate.measure(path, evalset)
        steps.note(f"{relative}: {_parity_summary(parity)}")
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        return Variant(precision, relative, destination.stat().st_size, sha256_file(destination), parity=parity,
                       details=details)

    variants: dict[str, Any] = {"_inputs": inputs, "_outputs": outputs, "_graphs": {}}
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
            variants["_graphs"][f"fp32-{label}"] = place("fp32", graphs[label], relative, parity,
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
                variants["_graphs"]["fp16-fused"] = place(
                    "fp16", fused_fp16, FP16_FUSED_FILE, parity,
                    {"graph": "fused", "fused_operators": gpu_ops, "fp32_ops": kept, "io_types": "float32",
                     "why": "ONNX Runtime's CUDA provider runs the fused operators in fp16"})
    if "int8" in wanted:
        label = next(g for g in INT8_SOURCE_ORDER if g in graphs)
        path, details, parity = _build_int8(checkpoint, label, graphs[label], work, steps, batches, mask_token_id,
                                            quantization or QuantizationPreset.default(),
                                            ladder=int8_policy == "accuracy")
        variants["int8"] = place("int8", path, VARIANT_FILES["int8"], parity, details)
    if "int8-static" in wanted and calibration is not None and evalset is not None:
        reader = calibration_io.reader_for(checkpoint, calibration, inputs)
        path, details, figures = static_int8.build(plain, work, reader, calibration, evalset, steps,
                                                   methods=tuple(static_methods or ()) or None,
                                                   fallback=int8_policy == "accuracy")
        parity = {**validate("int8-static", path), "agreement": figures}
        variants["int8-static"] = place("int8-static", path, VARIANT_FILES["int8-static"], parity, details)
    return variants


#: Extra fp32 graphs a bundle carries beside ``onnx/model.onnx`` (optimum's plain export), and their files.
EXTRA_GRAPH_FILES: dict[str, str] = {"fused": "onnx/model_fused.onnx", "flash": "onnx/model_flash.onnx"}
#: ONNX Runtime's fully fused graph in fp16 (every fusion, for its CUDA provider), beside ``model_fp16.onnx``.
FP16_FUSED_FILE = "onnx/model_fp16_fused.onnx"
#: The dynamic int8 variant is quantised from the first of these graphs the export could build.  A fixed
#: rule, not a measurement: the flash graph's int8 was the fastest on full-size DistilBERT-QA at every
#: shape measured (see ``attention``), and quantising one graph keeps export quick.
INT8_SOURCE_ORDER: tuple[str, ...] = ("flash", "fused", "plain")


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


INT8_POLICIES = ("accuracy", "speed")
#: Fused attention operators: a graph with them has no activation x activation MatMuls.
ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention"})
#: What an int8 variant must reach to be preferred over a more accurate fallback.
INT8_COSINE_TARGET = 0.99
INT8_AGREEMENT_TARGET = 1.0


def _meets_int8_target(figures: dict[str, Any]) -> bool:
    if "embedding_cosine_min" in figures:
        return figures["embedding_cosine_min"] >= INT8_COSINE_TARGET
    return figures.get("top1_agreement", 0.0) >= INT8_AGREEMENT_TARGET


def _build_int8(checkpoint: Checkpoint, label: str, graph: Path, work: Path, steps: Steps, batches: list,
                mask_token_id: int | None, preset: QuantizationPreset, *,
                ladder: bool) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Quantise ``graph`` with ``preset``, then (``ladder``) its accuracy fallbacks until one agrees.

    The accuracy policy keeps the most-quantised level that reaches the agreement target, else (no
    level does, e.g. random weights) the fully quantised one; the speed policy builds only the fully
    quantised one.  Returns the chosen file, its manifest details and its agreement figures.
    """
    op_types = _op_types(graph)
    tried: list[tuple[str, Path, QuantizationPreset, dict[str, Any]]] = []
    built: set[tuple[tuple[str, ...], tuple[str, ...], bool]] = set()
    for suffix, level_preset in preset.accuracy_ladder() if ladder else (("", preset),):
        # With fused attention there are no activation MatMuls left to keep in fp32.
        activation_matmuls = level_preset.activation_matmuls and not op_types & ATTENTION_OPS
        key = (tuple(o for o in level_preset.operators if o in op_types), level_preset.keep_fp32, activation_matmuls)
        if key in built:
            continue
        built.add(key)
        tag = f"{label}{suffix}"
        path = work / f"int8_{tag}.onnx"
        with steps.step("quantise", f"int8 {tag}, preset {preset.name}"):
            quantize(graph, path, level_preset)
            figures = check_variant("int8", path, checkpoint, batches, mask_token_id=mask_token_id)
        tried.append((tag, path, level_preset, figures))
        if _meets_int8_target(figures):
            break
    met = _meets_int8_target(tried[-1][3])
    tag, path, chosen, figures = tried[-1] if met else tried[0]
    details = {
        "graph": label, "preset": chosen.to_dict(),
        "source": f"first of {', '.join(INT8_SOURCE_ORDER)} the export built",
        "candidates": {t: {k: v for k, v in f.items() if k != "reference"} for t, _, _, f in tried},
        "target": {"embedding_cosine_min": INT8_COSINE_TARGET} if checkpoint.task == "feature-extraction"
        else {"top1_agreement": INT8_AGREEMENT_TARGET},
        "target_met": met,
        "chosen": tag,
        "policy": "accuracy" if ladder else "speed",
    }
    steps.note(f"int8 {tag}: {'meets' if met else 'misses'} the agreement target")
    return path, details, figures


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


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
