"""distilrt.runtime: run exported bundles with ONNX Runtime and tokenizers, nothing heavier.

This is the public API.
"""

from __future__ import annotations

from .errors import (
    BundleError,
    CheckpointError,
    DistilrtError,
    HubUnreachableError,
    InputError,
    MissingDependencyError,
    OutputExistsError,
    OutputNotWritableError,
    ParityError,
    ProviderUnavailableError,
    UnknownNameError,
)
from .manifest import Manifest

__all__ = [
    "BundleError",
    "CheckpointError",
    "DistilrtError",
    "HubUnreachableError",
    "InputError",
    "Manifest",
    "MissingDependencyError",
    "OutputExistsError",
    "OutputNotWritableError",
    "ParityError",
    "ProviderUnavailableError",
    "UnknownNameError",
]
