"""distilrt.runtime: run exported bundles with ONNX Runtime and tokenizers, nothing heavier.

This is the public API.
"""

from __future__ import annotations

from .errors import (
    BundleError,
    CacheDirError,
    CheckpointError,
    DistilrtError,
    ExporterMissingError,
    GraphUnsupportedError,
    HubUnreachableError,
    InputError,
    MaskTokenMissingError,
    MissingDependencyError,
    OutputExistsError,
    OutputNotWritableError,
    ParityError,
    ProviderUnavailableError,
    TaskMismatchError,
    UnknownNameError,
)
from .bundle import Bundle, load_bundle
from .manifest import Manifest
from .pipeline import pipeline

__all__ = [
    "Bundle",
    "BundleError",
    "CacheDirError",
    "CheckpointError",
    "DistilrtError",
    "ExporterMissingError",
    "GraphUnsupportedError",
    "HubUnreachableError",
    "InputError",
    "Manifest",
    "MaskTokenMissingError",
    "MissingDependencyError",
    "OutputExistsError",
    "OutputNotWritableError",
    "ParityError",
    "ProviderUnavailableError",
    "TaskMismatchError",
    "UnknownNameError",
    "load_bundle",
    "pipeline",
]
