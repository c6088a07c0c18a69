"""Bundle loading: the manifest, the model config, and which variant to run on which provider."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError, InputError, TaskMismatchError, UnknownNameError
from .manifest import Manifest, Variant
from .registry import PRECISIONS, TASKS, check_task

logger = logging.getLogger(__name__)

PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
#: What ``precision="auto"`` prefers per device, best first.
AUTO_PRECISION: dict[str, tuple[str, ...]] = {
    "cpu": ("int8", "int8-static", "fp32", "fp16"),
    "cuda": ("fp16", "fp32", "int8-static", "int8"),
}


@dataclass(frozen=True)
class Bundle:
    """A bundle directory as read from disk (nothing is verified or opened yet besides JSON)."""

    path: Path
    manifest: Manifest
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def vocab_size(self) -> int | None:
        value = self.config.get("vocab_size")
        return int(value) if isinstance(value, int) else None

    def check_task(self, task: str | None) -> str:
        """The task to run: ``task`` if the bundle was exported for it, the bundle's own if None."""
        if task is None:
            return self.manifest.task
        if task not in TASKS:
            check_task(task)  # raises UnknownNameError listing the tasks
        if task != self.manifest.task:
            raise TaskMismatchError(
                f"bundle {self.manifest.name!r} was exported for {self.manifest.task}, not {task}; its graph has the "
                f"outputs {', '.join(self.manifest.outputs)}. Use pipeline({self.manifest.task!r}, ...) or pipeline(None, ...), "
                f"or re-export the checkpoint with `distilrt export MODEL --task {task}`"
            )
        return task

    def choose_precision(self, precision: str, *, device: str) -> str:
        """Resolve ``precision`` for a device ("cpu" or "cuda"); ``auto`` falls back to what the bundle has."""
        if precision not in PRECISION_CHOICES:
            raise UnknownNameError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_CHOICES)}")
        if precision != "auto":
            self.manifest.variant(precision)  # raises BundleError listing the variants the bundle has
            return precision
        preferred = [p for p in AUTO_PRECISION[device] if p in self.manifest.variants]
        # A variant whose recorded agreement missed its target is taken only when no other variant is left.
        usable = [p for p in preferred if not misses_target(self.manifest.variants[p])]
        if not preferred:
            raise BundleError(f"bundle {self.manifest.name!r} lists no variants; re-export it")
        candidate = (usable or preferred)[0]
        first = AUTO_PRECISION[device][0]
        if candidate != first:
            missed = preferred[:preferred.index(candidate)]
            logger.info("precision auto: bundle %s has no usable %s variant for %s%s; using %s (it has: %s)",
                        self.manifest.name, first, device,
                        f" ({', '.join(missed)} missed the agreement target recorded at export)" if missed else "",
                        candidate, ", ".join(self.manifest.variants))
        return candidate


def misses_target(variant: Variant) -> bool:
    """True when export recorded that ``variant`` missed its agreement target (on the evaluation set or the
    older small check); variants without a recorded target (fp32) never miss."""
    agreement = variant.parity.get("agreement") or {}
    return agreement.get("target_met") is False or variant.details.get("target_met") is False


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle's ``manifest.json`` and ``config.json`` (model files are verified when opened)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"model must be a bundle directory (a str or Path), got {type(path).__name__}; pass the "
                          "directory `distilrt export` wrote")
    directory = Path(path).expanduser()
    manifest = Manifest.read(directory)
    raw = manifest.read_file(directory, "config.json")
    if raw is None:
        raise BundleError(f"bundle {directory} has no config.json; re-export it with `distilrt export`")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"cannot read {directory / 'config.json'}: {str(exc)[:200]}; re-export the bundle") from exc
    if not isinstance(config, dict):
        raise BundleError(f"{directory / 'config.json'} holds a JSON {type(config).__name__}, not an object; "
                          "re-export the bundle")
    return Bundle(directory, manifest, config)
