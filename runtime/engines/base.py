"""What every engine shares: the SHA-256 check before a file is opened, and the engine interface.

An engine is one loaded model file on one backend (ONNX Runtime, OpenVINO).  Tasks, the tokenizer,
batching and the server see only this interface: the graph's declared inputs and outputs, ``run``
(feeds in, named float32 arrays out) and ``describe``.  ``run`` is safe to call from several threads
at once; each engine keeps its per-call state per thread.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError
from ..manifest import Manifest, inside

FileIdentity = tuple[int, int, int, int]


def _identity(stat: os.stat_result) -> FileIdentity:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def verify_variant(directory: Path, manifest: Manifest, precision: str) -> tuple[Path, FileIdentity]:
    """Check a variant's file against the manifest's SHA-256 before anything parses it.

    Returns the path and the file's identity (device, inode, size, mtime) as hashed, so that the
    caller can confirm after loading that the engine read that same file (:func:`check_unchanged`).
    Engines are handed the path rather than the bytes: they map the file, which keeps peak memory a
    model-size lower.
    """
    variant = manifest.variant(precision)
    path = inside(directory, variant.file)
    if not path.is_file():
        raise BundleError(f"bundle file {path} is missing (the manifest lists it for {precision}); re-export the bundle")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    actual = digest.hexdigest()
    if actual != variant.sha256:
        raise BundleError(
            f"{path} does not match the manifest (SHA-256 {actual[:16]}… != {variant.sha256[:16]}…); the file was "
            "modified or corrupted. Re-export the bundle; distilrt will not run it"
        )
    return path, _identity(before)


def check_unchanged(path: Path, identity: FileIdentity) -> None:
    """Refuse an engine whose file was replaced or rewritten between the hash check and the load."""
    try:
        now = _identity(os.stat(path))
    except OSError as exc:
        raise BundleError(f"{path} disappeared while it was being loaded: {exc}") from exc
    if now != identity:
        raise BundleError(f"{path} changed while it was being loaded (after its SHA-256 was checked); load it again")


@dataclass(frozen=True)
class EngineInfo:
    """What an engine says about itself (``distilrt info``, ``tune`` records, logs, serve's model list)."""

    engine: str  # "onnxruntime" or "openvino"
    device: str  # "cpu" or "cuda"
    precision: str  # the precision asked for ("int8", "bf16", ...)
    file: str  # the bundle file it runs
    providers: tuple[str, ...]  # ORT execution providers, or the OpenVINO device
    threads: int | None
    streams: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["providers"] = list(self.providers)
        return data


class Engine(ABC):
    """One verified model file loaded on one backend; see the module docstring."""

    #: Engine name ("onnxruntime", "openvino").
    name: str = ""
    precision: str
    path: Path
    input_names: list[str]
    input_dtypes: dict[str, Any]
    output_names: list[str]
    providers: list[str]

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; every output comes back as a float32 numpy array, keyed by name."""

    @abstractmethod
    def describe(self) -> EngineInfo:
        """Name, device, precision, providers, threads and streams of this engine."""
