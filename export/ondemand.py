"""The exporter the runtime calls for a model it has no bundle for.

Registered in ``pyproject.toml`` under the ``distilrt.exporters`` entry point, so ``pipeline(model_id)``
exports on demand without the runtime importing the exporter (see ``distilrt.runtime.resolve``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .api import export_model


def export_bundle(model: str, output: Path, *, name: str, task: str, revision: str | None,
                  progress: TextIO | None) -> Path:
    """Export every precision of ``model`` as the bundle ``output/name``, replacing one there."""
    return export_model(model, output, name=name, task=task, revision=revision, force=True, progress=progress).path
