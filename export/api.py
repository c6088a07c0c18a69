"""export_model: checkpoint -> validated ONNX bundle (fp32, fp16, int8)."""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

from distilrt.runtime.errors import UnknownNameError
from distilrt.runtime.hostinfo import cpu_info, package_versions
from distilrt.runtime.manifest import Manifest, Variant, sha256_file
from distilrt.runtime.registry import ARCHITECTURES, PRECISIONS, VARIANT_FILES, check_precision

from . import bundle as bundle_io
from .attention import rewrite_for_flash_attention
from .convert import DEFAULT_OPSET, export_fp32
from .fp16 import convert_fp16
from .load import Checkpoint, resolve_checkpoint
from .optimize import TIMING_SHAPES, fuse, time_models
from .progress import Steps
from .quantize import QuantizationPreset, quantize
from .validate import check_variant, reference_batches

logger = logging.getLogger(__name__)

#: Round-robin runs per candidate graph when choosing the fastest; the fastest run counts.  Candidates
#: often differ by 3-7 %, which five runs on a shared machine did not always resolve (full-size
#: DistilBERT-QA int8: the flash graph, faster at every shape side by side, lost one export at five).
SELECTION_REPEATS = 15
SELECTION_NOTE = (f"fastest of {SELECTION_REPEATS} round-robin runs of "
                  + " + ".join(f"{b}x{s}" for b, s in TIMING_SHAPES) + " random tokens, ms")

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
    progress: TextIO | None = None,
) -> ExportResult:
    """Export ``model`` (hub id or local checkpoint directory) to ``output/<name>`` and validate it.

    Every requested variant is checked against PyTorch; an fp32 or fp16 variant outside tolerance
    raises :class:`~distilrt.runtime.errors.ParityError` and nothing is written.  ``progress`` (e.g.
    ``sys.stderr``) receives a line per step.  ``name`` overrides the bundle directory name (default:
    the last component of ``model``).  ``int8_policy="accuracy"`` keeps the most-quantised int8 graph
    that reaches the agreement target (top-1 agreement 100%, or embedding cosine >= 0.99), falling back
    to keeping sensitive layers in fp32; ``"speed"`` keeps the fastest fully quantised graph.
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

    staging = bundle_io.staging_dir(output, name)
    work = Path(tempfile.mkdtemp(prefix="distilrt-export-"))
    try:
        variants = _build_variants(checkpoint, wanted, staging, work, steps, opset=opset, quantization=quantization,
                                   int8_policy=int8_policy)
        bundle_io.copy_support_files(checkpoint.path, work / "fp32", staging)
        manifest = Manifest(
            name=name,
            task=checkpoint.task,
            architecture=checkpoint.architecture,
            model_type=checkpoint.model_type,
            source={"model": checkpoint.source, "path": str(checkpoint.path), "revision": checkpoint.revision,
                    "from_hub": checkpoint.from_hub, "seed": checkpoint.spec.name if checkpoint.spec else None},
            max_sequence_length=checkpoint.max_sequence_length,
            inputs=tuple(variants.pop("_inputs")),
            outputs=tuple(variants.pop("_outputs")),
            opset=opset or DEFAULT_OPSET,
            versions=package_versions(_VERSIONED),
            variants=variants,
            tokenizer={"kind": ARCHITECTURES.get(checkpoint.model_type).tokenizer_kind, "file": "tokenizer.json"},
            pooling=bundle_io.sentence_pooling(checkpoint.path),
            host=_host(),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        with steps.step("write", str(target)):
            bundle_io.commit(staging, target, manifest)
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
) -> dict[str, Any]:
    vocab = int(checkpoint.config.get("vocab_size", 30000))
    max_len = checkpoint.max_sequence_length

    def timed(paths: dict[str, Path]) -> dict[str, float]:
        return time_models(paths, vocab_size=vocab, max_len=max_len, repeats=SELECTION_REPEATS)

    (work / "fp32").mkdir()
    with steps.step("export", "PyTorch -> ONNX fp32 (optimum)"):
        plain = export_fp32(checkpoint, work / "fp32", opset=opset)
    inputs, outputs = _io_names(plain)

    with steps.step("optimise", "ORT transformer fusions"):
        # CPU candidates leave out the fusions whose CPU kernels are the slower (see optimize.fuse); the
        # fp16 variant, meant for CUDA / TensorRT, gets every fusion.
        fused_ops = _fuse_or_nothing(plain, work / "fused.onnx", checkpoint.config, for_cpu=True)
        gpu_ops = (_fuse_or_nothing(plain, work / "fused_gpu.onnx", checkpoint.config, for_cpu=False)
                   if "fp16" in wanted else {})
        graphs = {"none": plain}
        if fused_ops:
            graphs["fused"] = work / "fused.onnx"
            if _flash_or_nothing(work / "fused.onnx", work / "flash.onnx"):
                graphs["flash"] = work / "flash.onnx"
    steps.note("fused: " + (", ".join(f"{k}x{v}" for k, v in fused_ops.items()) or "nothing")
               + ("; flash-attention graph built" if "flash" in graphs else ""))

    with steps.step("reference", "PyTorch outputs (padded text batch + max-length batch)"):
        batches = reference_batches(checkpoint)
        mask_token_id = _mask_token_id(checkpoint)

    made: dict[str, tuple[Path, dict[str, Any]]] = {}
    if "fp32" in wanted:
        with steps.step("measure", "fp32 graphs"):
            latency = timed(graphs)
        best = min(latency, key=latency.get)
        made["fp32"] = (graphs[best], {"graph": best, "fused_operators": _graph_ops(best, fused_ops),
                                       "selection_ms": latency, "selection": SELECTION_NOTE,
                                       "measured_on": "CPUExecutionProvider"})
    if "fp16" in wanted:
        source = "fused" if gpu_ops else "none"
        with steps.step("convert", "fp16"):
            fp16_path = work / "model_fp16.onnx"
            kept = convert_fp16(work / "fused_gpu.onnx" if gpu_ops else plain, fp16_path)
        made["fp16"] = (fp16_path, {"graph": source, "fused_operators": gpu_ops, "fp32_ops": kept, "io_types": "float32",
                                    "why": "fused attention is what CUDA/TensorRT run fastest"})
    int8_figures: dict[str, Any] | None = None
    if "int8" in wanted:
        made["int8"], int8_figures = _choose_int8(checkpoint, graphs, work, steps, batches, mask_token_id,
                                                  quantization or QuantizationPreset.for_host(), timed,
                                                  ladder=int8_policy == "accuracy")

    variants: dict[str, Any] = {"_inputs": inputs, "_outputs": outputs}
    for precision, (path, details) in made.items():
        if precision == "int8" and int8_figures is not None:
            parity = int8_figures  # measured while choosing the int8 candidate
        else:
            with steps.step("validate", precision):
                parity = check_variant(precision, path, checkpoint, batches, mask_token_id=mask_token_id)
        steps.note(f"{precision}: {_parity_summary(parity)}")
        relative = VARIANT_FILES[precision]
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        variants[precision] = Variant(precision, relative, destination.stat().st_size, sha256_file(destination),
                                      parity=parity, details=details)
    return variants


def _fuse_or_nothing(plain: Path, out: Path, config: dict[str, Any], *, for_cpu: bool) -> dict[str, int]:
    """:func:`fuse`, or {} when the optimizer fails: that costs speed, not correctness."""
    try:
        return fuse(plain, out, config, for_cpu=for_cpu)
    except Exception as exc:
        logger.warning("graph optimisation failed (%s); keeping the unfused graph", exc)
        return {}


def _graph_ops(graph: str, fused_ops: dict[str, int]) -> dict[str, int]:
    """The fused operators of candidate graph ``graph`` ("none", "fused" or "flash")."""
    if graph == "none":
        return {}
    if graph == "flash":
        return {("MultiHeadAttention" if k == "Attention" else k): v for k, v in fused_ops.items()}
    return fused_ops


def _flash_or_nothing(fused: Path, out: Path) -> bool:
    """:func:`rewrite_for_flash_attention`; False when it does not apply or fails (a candidate less)."""
    try:
        return rewrite_for_flash_attention(fused, out) > 0
    except Exception as exc:
        logger.warning("flash-attention rewrite failed (%s); not a candidate", exc)
        return False


INT8_POLICIES = ("accuracy", "speed")
#: Fused attention operators: a graph with them has no activation x activation MatMuls.
ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention"})
#: What an int8 variant must reach to be preferred over a slower, more accurate candidate.
INT8_COSINE_TARGET = 0.99
INT8_AGREEMENT_TARGET = 1.0


def _meets_int8_target(figures: dict[str, Any]) -> bool:
    if "embedding_cosine_min" in figures:
        return figures["embedding_cosine_min"] >= INT8_COSINE_TARGET
    return figures.get("top1_agreement", 0.0) >= INT8_AGREEMENT_TARGET


def _choose_int8(checkpoint: Checkpoint, graphs: dict[str, Path], work: Path, steps: Steps, batches: list,
                 mask_token_id: int | None, preset: QuantizationPreset,
                 timed, *, ladder: bool) -> tuple[tuple[Path, dict[str, Any]], dict[str, Any]]:
    """Quantise each graph with the preset and its accuracy fallbacks (:meth:`accuracy_ladder`).

    With ``ladder`` (the accuracy policy): keeps the fastest candidate of the most-quantised level that
    reaches the agreement target, else (nothing reaches it, e.g. random weights) the fastest fully
    quantised one.  Without (the speed policy): the fastest fully quantised candidate.
    """
    op_types = {label: _op_types(graph) for label, graph in graphs.items()}
    levels: list[list[list[Any]]] = []
    built: set[tuple[str, tuple[str, ...], tuple[str, ...], bool]] = set()
    passing: list[list[Any]] = []
    for level_suffix, level_preset in preset.accuracy_ladder() if ladder else (("", preset),):
        level = []
        for (alt_suffix, variant_preset), (label, graph) in itertools.product(level_preset.alternatives(),
                                                                             graphs.items()):
            # With fused attention there are no activation MatMuls left to keep in fp32.
            activation_matmuls = variant_preset.activation_matmuls and not op_types[label] & ATTENTION_OPS
            key = (label, tuple(o for o in variant_preset.operators if o in op_types[label]), variant_preset.keep_fp32,
                   activation_matmuls)
            if key in built:
                continue
            built.add(key)
            tag = f"{label}{level_suffix}{alt_suffix}"
            path = work / f"int8_{tag}.onnx"
            with steps.step("quantise", f"int8 {tag}, preset {preset.name}"):
                quantize(graph, path, variant_preset)
                figures = check_variant("int8", path, checkpoint, batches, mask_token_id=mask_token_id)
            level.append([tag, label, path, variant_preset, figures, None])
        levels.append(level)
        # The most-quantised level that reaches the target wins; later levels are slower.
        passing = [c for c in level if _meets_int8_target(c[4])]
        if passing:
            break
    candidates = [c for level in levels for c in level]
    # If nothing reaches the target (e.g. random weights), the fallbacks buy nothing worth their
    # speed and the fully quantised graphs compete.  The speed policy times every fully quantised graph
    # whatever its agreement (which is still recorded).
    contenders = (passing or levels[0]) if ladder else levels[0]
    with steps.step("measure", f"int8 {', '.join(c[0] for c in contenders)}"):
        latency = timed({c[0]: c[2] for c in contenders})
    for candidate in contenders:
        candidate[5] = latency[candidate[0]]
    tag, label, path, chosen, figures, _ = min(contenders, key=lambda c: c[5])
    details = {
        "graph": label, "preset": chosen.to_dict(), "measured_on": "CPUExecutionProvider",
        "selection_ms": {c[0]: c[5] for c in contenders}, "selection": SELECTION_NOTE,
        "candidates": {c[0]: {k: v for k, v in c[4].items() if k != "reference"} for c in candidates},
        "target": {"embedding_cosine_min": INT8_COSINE_TARGET} if checkpoint.task == "feature-extraction"
        else {"top1_agreement": INT8_AGREEMENT_TARGET},
        "target_met": bool(passing),
        "chosen": tag,
        "policy": "accuracy" if ladder else "speed",
    }
    steps.note(f"int8 candidate {tag}: {'meets' if passing else 'no candidate meets'} the agreement target")
    return (path, details), figures


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
    return ", ".join(parts)
