"""Compatibility names: the ONNX Runtime session now lives in :mod:`distilrt.runtime.engines.onnxruntime`.

``ModelSession`` is :class:`~distilrt.runtime.engines.onnxruntime.OrtEngine`; the file check and the
session options are importable from here as before.
"""

from __future__ import annotations

from .engines.base import check_unchanged, verify_variant
from .engines.onnxruntime import (
    CPU_DISABLED_OPTIMIZERS,
    OPTIMIZATION_LEVELS,
    OrtEngine,
    SessionSettings,
    create_session,
    session_options,
)
from .hostinfo import physical_cores

ModelSession = OrtEngine

__all__ = ["CPU_DISABLED_OPTIMIZERS", "OPTIMIZATION_LEVELS", "ModelSession", "OrtEngine", "SessionSettings",
           "check_unchanged", "create_session", "physical_cores", "session_options", "verify_variant"]
