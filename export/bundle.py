"""Assemble a bundle in a temporary directory and move it into place only when complete."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from distilrt.runtime.errors import InputError, OutputExistsError, OutputNotWritableError
from distilrt.runtime.manifest import MANIFEST_NAME, Manifest

logger = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
)
POOLING_FILES = ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json")


def bundle_name(model: str) -> str:
    """The bundle's directory name: the last component of a hub id or path."""
    name = Path(model.rstrip("/")).name
    if name in ("", ".", ".."):
        raise InputError(f"cannot derive a bundle name from {model!r}; pass name=... (--name NAME)")
    return name


def prepare_output(output: Path, name: str, *, force: bool) -> Path:
    """Check the target can be written; refuse an existing one unless it is a bundle and ``force``."""
    target = output / name
    if target.exists():
        if not force:
            raise OutputExistsError(f"{target} already exists; pass --force (force=True) to replace the bundle there")
        if not (target / MANIFEST_NAME).is_file():
            raise OutputExistsError(
                f"{target} exists and is not a distilrt bundle (no {MANIFEST_NAME}); distilrt replaces only "
                "bundles it wrote. Choose another --output or move that directory away"
            )
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".distilrt-probe-"):
            pass
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write to {output}: {exc.strerror or exc}; choose a writable --output") from exc
    return target


def staging_dir(output: Path, name: str) -> Path:
    """A temporary directory beside the target (same filesystem, so the final move is a rename)."""
    return Path(tempfile.mkdtemp(dir=output, prefix=f".{name}.partial-"))


def copy_support_files(checkpoint_dir: Path, exported_dir: Path, staging: Path) -> list[str]:
    """Tokenizer files (as optimum saved them), config.json and any sentence-transformers pooling config."""
    copied = []
    for name in ("config.json", *TOKENIZER_FILES):
        source = exported_dir / name
        if source.is_file():
            shutil.copy2(source, staging / name)
            copied.append(name)
    for name in POOLING_FILES:
        source = checkpoint_dir / name
        if source.is_file():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / name)
            copied.append(name)
    return copied


def sentence_pooling(checkpoint_dir: Path) -> dict[str, object] | None:
    """The pooling a sentence-transformers checkpoint declares (mode, normalisation), or None."""
    modules_path = checkpoint_dir / "modules.json"
    if not modules_path.is_file():
        return None
    modules = json.loads(modules_path.read_text(encoding="utf-8"))
    types = [m.get("type", "") for m in modules]
    pooling_cfg: dict[str, object] = {}
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            cfg_path = checkpoint_dir / module.get("path", "") / "config.json"
            if cfg_path.is_file():
                pooling_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if pooling_cfg.get("pooling_mode_cls_token"):
        mode = "cls"
    elif pooling_cfg.get("pooling_mode_max_tokens"):
        mode = "max"
    else:
        mode = "mean"
    return {"mode": mode, "normalize": any(t.endswith("Normalize") for t in types), "source": "modules.json"}


def commit(staging: Path, target: Path, manifest: Manifest) -> None:
    """Move a finished staging directory into place.

    A fresh target is one rename.  Replacing a bundle (``--force``) removes its manifest first, so a
    half-replaced bundle never looks complete, moves the new files over, drops variant files the old
    manifest listed that the new one does not, and leaves files distilrt did not write alone.
    """
    manifest.write(staging)
    if not target.exists():
        os.replace(staging, target)
        return
    old = Manifest.read(target) if (target / MANIFEST_NAME).is_file() else None
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    new_files = [p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST_NAME]
    for source in new_files:
        destination = target / source.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)
    if old is not None:
        keep = {v.file for v in (*manifest.variants.values(), *manifest.graphs.values())}
        for variant in (*old.variants.values(), *old.graphs.values()):
            if variant.file not in keep:
                (target / variant.file).unlink(missing_ok=True)
    os.replace(staging / MANIFEST_NAME, target / MANIFEST_NAME)
    shutil.rmtree(staging, ignore_errors=True)
