"""The optimised-model cache: ONNX Runtime's graph optimisation result, saved next to the bundle.

ONNX Runtime optimises a graph every time a session is built.  With the cache on, the first session
saves the result under ``<bundle>/.cache/`` and later ones load it instead.  It is off by default:
bundles are already fused at export, so the online optimisation left is cheap, and measured on a
full-size DistilBERT (ORT 1.31, 2 cores) reading and hashing a second copy costs more than it saves.
It pays off for graphs exported without fusion.  The cache is not one
of the bundle's hashed files; instead each entry is keyed by the SHA-256 of the variant it came from
(plus the onnxruntime version, provider, optimisation level and CPU, since optimised graphs are
machine-specific) and carries its own SHA-256 in a sidecar, checked before it is opened.  A re-exported
variant has a new SHA-256, so its stale entries are never used, and they are removed on the next save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

from .hostinfo import cpu_name

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = ".cache"


@dataclass(frozen=True)
class OptimizedModelCache:
    """One cache entry: the optimised form of one variant for one provider and optimisation level."""

    directory: Path
    stem: str  # the variant's file stem, e.g. "model_quantized"
    source_sha256: str
    provider: str
    level: str
    disabled: tuple[str, ...] = ()  # optimizers left out: the optimised graph depends on them

    @classmethod
    def for_variant(cls, bundle_dir: Path, variant_file: str, source_sha256: str, *, provider: str, level: str,
                    cache_dir: Path | None = None, disabled: tuple[str, ...] = ()) -> "OptimizedModelCache":
        return cls(Path(cache_dir) if cache_dir else Path(bundle_dir) / CACHE_DIR_NAME, Path(variant_file).stem,
                   source_sha256, provider, level, tuple(sorted(disabled)))

    @property
    def key(self) -> str:
        import onnxruntime as ort

        settings = "|".join((ort.__version__, self.provider, self.level, platform.machine(), cpu_name(),
                             ",".join(self.disabled)))
        return f"{self.source_sha256[:16]}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"

    @property
    def path(self) -> Path:
        return self.directory / f"{self.stem}.{self.key}.onnx"

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    def load(self) -> bytes | None:
        """The cached optimised model, or None when absent, stale or damaged (a damaged one is removed)."""
        if not (self.path.is_file() and self.sidecar.is_file()):
            return None
        try:
            record = json.loads(self.sidecar.read_text(encoding="utf-8"))
            data = self.path.read_bytes()
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("ignoring unreadable optimised-model cache %s: %s", self.path, exc)
            return None
        if record.get("source_sha256") != self.source_sha256 or hashlib.sha256(data).hexdigest() != record.get("sha256"):
            logger.warning("optimised-model cache %s does not match its record; rebuilding it", self.path)
            self.discard()
            return None
        return data

    def staging_path(self) -> Path | None:
        """Where ORT may write the optimised model, or None when the cache directory is not writable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.debug("optimised-model cache disabled: cannot create %s (%s)", self.directory, exc)
            return None
        if not os.access(self.directory, os.W_OK):
            logger.debug("optimised-model cache disabled: %s is not writable", self.directory)
            return None
        return self.directory / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.partial"

    def commit(self, staged: Path) -> None:
        """Move a freshly written optimised model into place with its record; drop stale entries."""
        if not staged.is_file():
            logger.debug("onnxruntime wrote no optimised model to %s", staged)
            return
        try:
            digest = hashlib.sha256(staged.read_bytes()).hexdigest()
            record = {"source_sha256": self.source_sha256, "sha256": digest, "provider": self.provider,
                      "level": self.level}
            sidecar_tmp = staged.with_suffix(".json.partial")
            sidecar_tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(staged, self.path)
            os.replace(sidecar_tmp, self.sidecar)
        except OSError as exc:
            logger.debug("could not save optimised model to %s: %s", self.path, exc)
            staged.unlink(missing_ok=True)
            return
        for stale in self.directory.glob(f"{self.stem}.*"):
            if not stale.name.startswith(f"{self.stem}.{self.source_sha256[:16]}-"):
                stale.unlink(missing_ok=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)
