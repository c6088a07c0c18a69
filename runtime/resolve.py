"""Turn a ``model`` argument (bundle directory or model id) into a bundle directory, and say how.

The order, first match wins:

1. a local bundle directory (it holds ``manifest.json``);
2. distilrt's bundle cache (``bundles/`` in ``$DISTILRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/distilrt``,
   else ``~/.cache/distilrt``) holding a bundle made earlier from that id, revision and task;
3. a hub repository that already ships ONNX files (optimum / transformers.js layout): fetched with
   huggingface_hub, given a manifest (marked not validated by distilrt) and kept in the bundle cache;
4. with the ``export`` extra installed, a checkpoint (hub id or local checkpoint directory) exported
   on demand into the bundle cache, with the exporter's usual progress on stderr.

The runtime imports nothing of the exporter: step 4 calls the :class:`Exporter` registered under the
``distilrt.exporters`` entry point (``pyproject.toml`` wires ``distilrt.export``'s own there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from .errors import BundleError, ExporterMissingError, InputError, MissingDependencyError
from .manifest import MANIFEST_NAME, Manifest
from .userdirs import cache_root

logger = logging.getLogger(__name__)

#: A hub id: ``name`` or ``owner/name`` (letters, digits, ``-``, ``_``, ``.``; no leading dot or slash).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")

LOCAL = "local bundle"
CACHED = "bundle cache"
HUB_ONNX = "hub ONNX repository"
EXPORTED = "exported on demand"


@dataclass(frozen=True)
class Resolution:
    """Where a model argument led: the bundle directory, and which of the four ways found it."""

    model: str  # what the caller passed
    path: Path  # the bundle directory
    how: str  # LOCAL, CACHED, HUB_ONNX or EXPORTED
    revision: str | None = None
    validated: bool = True  # False for bundles built from a hub repository's own ONNX files

    def describe(self) -> str:
        what = f"{self.model}" + (f"@{self.revision}" if self.revision else "")
        if self.how == LOCAL:
            return f"{self.how} {self.path}"
        note = "" if self.validated else " (ONNX files as published; not validated by distilrt)"
        return f"{what} -> {self.how} {self.path}{note}"


def bundle_cache_dir() -> Path:
    """Where bundles built from model ids live: ``bundles/`` in distilrt's user cache folder."""
    return cache_root() / "bundles"


def cache_entry(model: str, *, revision: str | None, task: str | None, local: bool = False) -> Path:
    """The bundle cache folder for one (id, revision, task); local checkpoints are keyed by their path."""
    if local:
        resolved = str(Path(model).expanduser().resolve())
        key = f"local--{Path(resolved).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"
    else:
        key = model.replace("/", "--")
    return bundle_cache_dir() / key / (revision or "main").replace("/", "--") / (task or "auto")


def looks_like_hub_id(model: str) -> bool:
    return bool(_HUB_ID.match(model)) and not model.startswith(".") and ".." not in model


def _cached(model: str, *, revision: str | None, task: str | None, local: bool = False) -> Path | None:
    """A complete cached bundle for this id, revision and task (an ``auto`` entry of that task counts)."""
    for entry_task in dict.fromkeys([task, None]):
        entry = cache_entry(model, revision=revision, task=entry_task, local=local)
        if (entry / MANIFEST_NAME).is_file():
            if task is not None and entry_task is None and Manifest.read(entry).task != task:
                continue
            return entry
    return None


def export_available() -> bool:
    """True when the ``export`` extra (torch, transformers, optimum) is importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers", "optimum"))


#: The entry-point group of the exporter that step 4 calls.
EXPORTERS = "distilrt.exporters"


class Exporter(Protocol):
    """Exports checkpoint ``model`` as the bundle ``output/name`` (replacing one there) and returns its path."""

    def __call__(self, model: str, output: Path, *, name: str, task: str, revision: str | None,
                 progress: TextIO | None) -> Path: ...


def find_exporter() -> Exporter | None:
    """The exporter registered under the ``distilrt.exporters`` entry point, if any."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=EXPORTERS), key=lambda point: point.name)
    return found[0].load() if found else None


def _export(model: str, *, revision: str | None, task: str | None, local: bool, progress: TextIO | None) -> Path:
    exporter = find_exporter()
    if exporter is None:
        command = " ".join([f"distilrt export {model} --output DIR", *([f"--task {task}"] if task else []),
                            *([f"--revision {revision}"] if revision else [])])
        raise ExporterMissingError(
            f"{model!r} has no bundle yet and no exporter is registered (the {EXPORTERS} entry point of the "
            f"distilrt package; an editable install made before it existed needs `pip install -e .` again). "
            f"Export it with `{command}` and pass DIR"
        )
    entry = cache_entry(model, revision=revision, task=task, local=local)
    entry.parent.mkdir(parents=True, exist_ok=True)
    logger.info("exporting %s into the bundle cache at %s", model, entry)
    return exporter(model, entry.parent, name=entry.name, task=task or "auto", revision=revision, progress=progress)


def _no_export(model: str, why: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"{model!r} {why}, so distilrt would export it, which needs the export extra (torch, transformers, "
        f"optimum): pip install 'distilrt[export]'. Or export it where that is installed, "
        f"`distilrt export {model} --output DIR`, and pass DIR"
    )


def resolve_model(model: str | Path, *, task: str | None = None, revision: str | None = None,
                  token: str | bool | None = None, export: bool = True,
                  progress: TextIO | None = sys.stderr) -> Resolution:
    """Find or make the bundle for ``model`` (see the module docstring for the order).

    ``task`` picks the cache entry and the export head (None: the checkpoint's own task); ``revision``
    and ``token`` go to huggingface_hub; ``export=False`` stops before an on-demand export.
    """
    if isinstance(model, bytes) or not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be a bundle directory or a model id (a str or Path), got "
                         f"{type(model).__name__}; pass the directory `distilrt export` wrote or a hub id such as "
                         "distilbert-base-uncased-distilled-squad")
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return Resolution(text, path, LOCAL)
        if not (path / "config.json").is_file():
            Manifest.read(path)  # raises the usual "not a distilrt bundle" error
        cached = _cached(text, revision=None, task=task, local=True)
        if cached is not None:
            return Resolution(text, cached, CACHED)
        if not export or not export_available():
            raise _no_export(text, "is a checkpoint directory, not a bundle")
        return Resolution(text, _export(text, revision=None, task=task, local=True, progress=progress), EXPORTED)
    if not looks_like_hub_id(text) or isinstance(model, Path):
        raise BundleError(f"bundle directory {text!r} does not exist, and it is not a model id either; pass the "
                          "directory `distilrt export` wrote, or a hub id such as distilbert-base-uncased-distilled-squad")
    cached = _cached(text, revision=revision, task=task)
    if cached is not None:
        manifest = Manifest.read(cached)
        return Resolution(text, cached, CACHED, revision, validated=manifest.source.get("validated", True) is not False)

    from .hub import build_bundle, fetch_snapshot, onnx_variants

    snapshot = fetch_snapshot(text, revision=revision, token=token, bundle_cache=bundle_cache_dir())
    if onnx_variants(snapshot):
        entry = cache_entry(text, revision=revision, task=task)
        entry.parent.mkdir(parents=True, exist_ok=True)
        build_bundle(snapshot, entry, model=text, revision=revision, task=task)
        return Resolution(text, entry, HUB_ONNX, revision, validated=False)
    if not export or not export_available():
        raise _no_export(text, "ships no ONNX files (onnx/model.onnx or model.onnx)")
    return Resolution(text, _export(text, revision=revision, task=task, local=False, progress=progress), EXPORTED,
                      revision)
