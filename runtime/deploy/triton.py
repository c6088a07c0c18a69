"""``distilrt deploy triton``: write a Triton Inference Server model repository for bundles.

Python backend (the default; runs anywhere Triton runs)::

    REPO/<name>/config.pbtxt        backend "python", REQUEST/RESPONSE as BYTES, dynamic_batching, instance_group
    REPO/<name>/1/model.py          imports distilrt.runtime.deploy.triton_model.TritonPythonModel
    REPO/<name>/1/bundle/           the bundle (copied, or linked with link=True), manifest included

The manifest's SHA-256 is recorded in the config's parameters and checked when Triton loads the model.
The onnxruntime-backend layout is written by :mod:`distilrt.runtime.deploy.triton_onnx`.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, OutputExistsError
from ..manifest import MANIFEST_NAME, Manifest, sha256_file
from .triton_model import BUNDLE_DIR, INPUT_NAME, OUTPUT_NAME

logger = logging.getLogger(__name__)

BACKENDS = ("python", "onnxruntime")

MODEL_PY = '''"""Triton python-backend model for the distilrt bundle in ./bundle (written by `distilrt deploy triton`).

The server's Python needs the distilrt runtime: pip install 'distilrt[cpu]' (GPU servers: 'distilrt[gpu]')
"""
try:
    from distilrt.runtime.deploy.triton_model import TritonPythonModel  # noqa: F401
except ImportError as exc:  # pragma: no cover - runs inside Triton
    raise ImportError(f"this Triton model needs the distilrt runtime in the server's Python ({exc}); "
                      "install it with: pip install 'distilrt[cpu]' (GPU servers: 'distilrt[gpu]')") from exc
'''


@dataclass(frozen=True)
class TritonOptions:
    """What ``distilrt deploy triton`` flags set for every model of the repository."""

    backend: str = "python"
    max_batch_size: int = 32
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    precision: str = "auto"
    provider: str = "cpu"
    threads: int | None = None
    pipeline_batch_size: int = 8
    link: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"backend {self.backend!r} is not one distilrt writes; choose one of {', '.join(BACKENDS)}")
        for name in ("max_batch_size", "instances", "pipeline_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_queue_delay_us < 0:
            raise InputError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be >= 1, got {self.threads}")

    @property
    def preferred(self) -> tuple[int, ...]:
        """Preferred batch sizes: as given, else powers of two from 4 up to max_batch_size."""
        if self.preferred_batch_sizes:
            return tuple(sorted({s for s in self.preferred_batch_sizes if 1 <= s <= self.max_batch_size}))
        sizes, size = [], 4
        while size < self.max_batch_size:
            sizes.append(size)
            size *= 2
        return tuple(sizes + [self.max_batch_size])

    @property
    def device_kind(self) -> str:
        return "KIND_GPU" if self.provider in ("cuda", "tensorrt") else "KIND_CPU"


def pbtxt_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dynamic_batching_block(options: TritonOptions) -> str:
    sizes = ", ".join(str(s) for s in options.preferred)
    return ("dynamic_batching {\n"
            f"  preferred_batch_size: [ {sizes} ]\n"
            f"  max_queue_delay_microseconds: {options.max_queue_delay_us}\n"
            "}\n")


def instance_group_block(options: TritonOptions) -> str:
    return f"instance_group [ {{ count: {options.instances} kind: {options.device_kind} }} ]\n"


def parameters_block(params: dict[str, str]) -> str:
    lines = [f"parameters {{ key: {pbtxt_string(k)} value: {{ string_value: {pbtxt_string(v)} }} }}"
             for k, v in params.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def python_model_config(name: str, options: TritonOptions, params: dict[str, str]) -> str:
    """config.pbtxt of a python-backend model: one JSON body in, one JSON answer out, per batch row."""
    return (f"name: {pbtxt_string(name)}\n"
            'backend: "python"\n'
            f"max_batch_size: {options.max_batch_size}\n"
            f'input [ {{ name: "{INPUT_NAME}" data_type: TYPE_STRING dims: [ 1 ] }} ]\n'
            f'output [ {{ name: "{OUTPUT_NAME}" data_type: TYPE_STRING dims: [ 1 ] }} ]\n'
            + dynamic_batching_block(options) + instance_group_block(options) + parameters_block(params))


def python_parameters(manifest_sha256: str, options: TritonOptions, task: str, **more: str) -> dict[str, str]:
    params = {
        "distilrt_task": task,
        "manifest_sha256": manifest_sha256,
        "precision": options.precision,
        "provider": options.provider,
        "threads": "" if options.threads is None else str(options.threads),
        "pipeline_batch_size": str(options.pipeline_batch_size),
    }
    params.update(more)
    params.update(options.extra)
    return params


def place_bundle(bundle: Path, target: Path, *, link: bool) -> None:
    """Copy ``bundle`` to ``target`` (or symlink it), leaving out caches the runtime writes."""
    if link:
        target.symlink_to(bundle.resolve(), target_is_directory=True)
        return
    shutil.copytree(bundle, target, ignore=shutil.ignore_patterns(".cache", "__pycache__"))


def prepare_output(output: Path, names: Sequence[str], *, force: bool) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = output / name
        if target.exists() or target.is_symlink():
            if not force:
                raise OutputExistsError(f"{target} already exists; pass --force to replace it or choose another "
                                        "--output")
            if target.is_symlink() or target.is_file():
                target.unlink()
            else:
                shutil.rmtree(target)


def read_bundles(bundles: Sequence[str | Path]) -> list[tuple[Path, Manifest]]:
    if not bundles:
        raise InputError("name at least one bundle directory to deploy")
    out = [(Path(b), Manifest.read(Path(b))) for b in bundles]
    names = [m.name for _, m in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several bundles are named {', '.join(duplicates)}; a repository holds each name once")
    return out


def write_triton_repository(bundles: Sequence[str | Path], output: str | Path, *, options: TritonOptions | None = None,
                            force: bool = False) -> list[Path]:
    """Write a Triton model repository serving ``bundles`` under ``output``; returns the model directories.

    ``options.backend == "onnxruntime"`` writes, per bundle, the ONNX graph as an ``onnxruntime_onnx``
    model plus a python-backend model that tokenizes, calls it and post-processes (see
    :mod:`~distilrt.runtime.deploy.triton_onnx`).
    """
    options = options or TritonOptions()
    output = Path(output)
    read = read_bundles(bundles)
    if options.backend == "onnxruntime":
        from .triton_onnx import write_onnx_models

        return write_onnx_models(read, output, options=options, force=force)
    prepare_output(output, [m.name for _, m in read], force=force)
    written: list[Path] = []
    for bundle, manifest in read:
        model_dir = output / manifest.name
        version = model_dir / "1"
        version.mkdir(parents=True)
        place_bundle(bundle, version / BUNDLE_DIR, link=options.link)
        digest = sha256_file(version / BUNDLE_DIR / MANIFEST_NAME)
        (version / "model.py").write_text(MODEL_PY, encoding="utf-8")
        params = python_parameters(digest, options, manifest.task)
        (model_dir / "config.pbtxt").write_text(python_model_config(manifest.name, options, params), encoding="utf-8")
        logger.info("wrote Triton python-backend model %s", model_dir)
        written.append(model_dir)
    return written


def describe_repository(models: Sequence[Path]) -> list[dict[str, Any]]:
    """One line of facts per written model (for the command's summary)."""
    out = []
    for model_dir in models:
        files = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file()
                       and BUNDLE_DIR not in p.relative_to(model_dir).parts)
        out.append({"model": model_dir.name, "path": os.fspath(model_dir), "files": files})
    return out
