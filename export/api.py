"""export_model: checkpoint -> validated ONNX bundle; the steps in order, the manifest, the atomic write.

What each variant is and how it is built: :mod:`.variants`; the int8 policy: :mod:`.dynamic_int8` and
:mod:`.static_int8`.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

from distilrt.runtime.errors import UnknownNameError
from distilrt.runtime.hostinfo import cpu_info, package_versions
from distilrt.runtime.manifest import Manifest
from distilrt.runtime.registry import ARCHITECTURES, PRECISIONS, check_precision

from . import bundle as bundle_io
from . import calibration as calibration_io
from .convert import DEFAULT_OPSET
from .dynamic_int8 import INT8_POLICIES
from .load import resolve_checkpoint
from .progress import Steps
from .quantize import QuantizationPreset
from .variants import build_variants

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
    calibration methods (default: NNCF, see :mod:`~distilrt.export.static_int8`).

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
        built = build_variants(checkpoint, wanted, staging, work, steps, opset=opset, quantization=quantization,
                                   int8_policy=int8_policy, calibration=calibration, static_methods=static_methods)
        bundle_io.copy_support_files(checkpoint.path, work / "fp32", staging)
        manifest = Manifest(
            name=name,
            task=checkpoint.task,
            architecture=checkpoint.architecture,
            model_type=checkpoint.model_type,
            source={"model": checkpoint.source, "path": str(checkpoint.path), "revision": checkpoint.revision,
                    "from_hub": checkpoint.from_hub, "seed": checkpoint.spec.name if checkpoint.spec else None},
            max_sequence_length=checkpoint.max_sequence_length,
            inputs=built.inputs,
            outputs=built.outputs,
            opset=opset or DEFAULT_OPSET,
            versions=package_versions(_VERSIONED),
            variants=built.variants,
            graphs=built.graphs,
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
