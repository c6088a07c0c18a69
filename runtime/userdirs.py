"""Where distilrt keeps per-user, per-host state: compiled-model caches and tuning profiles.

Nothing here goes inside a bundle: a bundle is portable, and these depend on the machine.
``DISTILRT_CACHE_DIR`` overrides the location (tests and read-only home directories use it).  Every
cache folder is below :func:`cache_root`: bundles built from model ids, OpenVINO and TensorRT compiled
models, tuning profiles.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "DISTILRT_CACHE_DIR"


def cache_root() -> Path:
    """``$DISTILRT_CACHE_DIR``, else the platform's user cache directory + ``/distilrt``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "distilrt" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "distilrt"
