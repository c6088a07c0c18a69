"""Typed errors raised by distilrt.

Every error says what was received, what is allowed, and how to fix it.  All of them derive from
:class:`DistilrtError`, so a caller can catch the family with one clause.
"""

from __future__ import annotations


class DistilrtError(Exception):
    """Base class of every error distilrt raises on purpose."""


class InputError(DistilrtError, ValueError):
    """A user-supplied value (text, option, argument) is invalid."""


class UnknownNameError(InputError, KeyError):
    """A name (task, precision, provider, checkpoint, architecture) is not one distilrt knows."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead.
        return str(self.args[0]) if self.args else ""


class CheckpointError(DistilrtError):
    """A checkpoint cannot be found, reached, or is not a supported architecture."""


class HubUnreachableError(CheckpointError):
    """A hub id was given but the model hub cannot be reached."""


class BundleError(DistilrtError):
    """A bundle directory is missing, incomplete, tampered with, or lacks what was asked for."""


class OutputExistsError(DistilrtError, FileExistsError):
    """The export target exists and ``force`` was not given."""


class ParityError(DistilrtError):
    """An exported variant does not reproduce the reference model within tolerance."""

    def __init__(self, message: str, *, variant: str, output: str, value: float, tolerance: float) -> None:
        super().__init__(message)
        self.variant = variant
        self.output = output
        self.value = value
        self.tolerance = tolerance


class ProviderUnavailableError(DistilrtError):
    """An execution provider was requested that this onnxruntime build cannot use."""


class GraphUnsupportedError(BundleError):
    """No graph of the bundle can be given to the requested provider at the requested precision
    (e.g. TensorRT, which parses standard ONNX operators only); the message names each graph's problem."""


class CacheDirError(DistilrtError, OSError):
    """A cache directory (e.g. TensorRT's engine cache) cannot be created or written."""


class MissingDependencyError(DistilrtError, ImportError):
    """An optional dependency is needed for this feature; the message names the install command."""


class ExporterMissingError(MissingDependencyError):
    """A model needs exporting and no exporter is registered; the message names the ``distilrt export`` command."""


def require_extra(extra: str, modules: tuple[str, ...], *, feature: str) -> None:
    """Import ``modules`` now, so that ``feature`` fails early, naming the ``extra`` that installs them."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependencyError(f"{feature} needs the {extra} extra ({exc.name or name} is missing); "
                                         f"install it with: pip install 'distilrt[{extra}]'") from exc


class OutputNotWritableError(DistilrtError, PermissionError):
    """The export target cannot be created or written."""


class TaskMismatchError(InputError):
    """A task was asked of a bundle exported for a different one (its ONNX graph has other outputs)."""


class MaskTokenMissingError(InputError):
    """A fill-mask text holds no mask token; the message names the model's mask token."""


class UnsupportedPrecisionError(InputError):
    """A precision was asked of an engine or a CPU that cannot run it; the message names what can."""


class TritonServerError(DistilrtError):
    """A local Triton server (from the nvidia-pytriton wheel) could not be set up, did not start, or died."""
