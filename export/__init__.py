"""distilrt.export: DistilBERT-family checkpoints to validated ONNX bundles.

This is the public API of the exporter.  It needs the ``export`` extra
(``pip install 'distilrt[export]'``): torch, transformers and optimum.
"""

from __future__ import annotations

from .api import ExportResult, export_model
from .quantize import QuantizationPreset

__all__ = ["ExportResult", "QuantizationPreset", "export_model"]
