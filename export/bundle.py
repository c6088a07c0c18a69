"""Assemble a bundle in a temporary directory and move it into place only when complete."""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from distilrt.runtime.errors import InputError, OutputExistsError, OutputNotWritableError
from distilrt.runtime.errors import BundleError
from distilrt.runtime.manifest import MANIFEST_NAME, Manifest, inside, seal

logger = logging.getLogger(__name__)

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
)
POOLING_FILES = (
    "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "config_sentence_transformers.json",
)


def bundle_name(model: str) -> str:
    """The bundle's directory name: the last component of a hub id or path."""
    name = Path(model.rstrip("/")).name
    if name in ("", ".", ".."):
        raise InputError(f"cannot derive a bundle name from {model!r}; pass name=... (--name NAME)")
    return name


def prepare_output(output: Path, name: str, *, force: bool) -> Path:
    """Check the target can be written; refuse an existing one unless it is a bundle and ``force``."""
    target = output / name
    if target.is_symlink():
        raise OutputExistsError(f"{target} is a symlink; distilrt replaces only bundle directories it wrote. Choose "
                                "another --output or remove the link")
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
    """A temporary directory beside the target (same filesystem, so the final move is a rename).

    Its name carries this process's id, so a later export can tell a leftover of a killed run (see
    :func:`collect_leftovers`); its mode follows the user's umask, as the bundle folder it becomes should.
    """
    staging = Path(tempfile.mkdtemp(dir=output, prefix=f".{name}.partial-{os.getpid()}-"))
    staging.chmod(0o777 & ~_umask())
    return staging


def work_dir() -> Path:
    """The exporter's scratch directory under the system temp dir, named so a later run can collect it."""
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))


WORK_PREFIX = "distilrt-export-"


def collect_leftovers(output: Path, name: str) -> list[Path]:
    """Remove staging and scratch directories left by exports that were killed (SIGKILL, power loss).

    Only directories this user owns, named by :func:`staging_dir` or :func:`work_dir`, whose process is
    gone are removed; a running export's directories are left alone.  Returns what was removed.
    """
    candidates = list(Path(output).glob(f".{glob.escape(name)}.partial-*")) if Path(output).is_dir() else []
    candidates += Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*")
    removed = []
    for path in candidates:
        pid = _owner_pid(path.name)
        if pid is None or _alive(pid) or path.is_symlink() or not path.is_dir():
            continue
        try:
            if path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        logger.info("removed %s, left behind by an export (process %d) that did not finish", path, pid)
    return removed


def _owner_pid(dirname: str) -> int | None:
    match = re.search(r"(?:\.partial-|^" + re.escape(WORK_PREFIX) + r")(\d+)-", dirname)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (setting it races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def commit(staging: Path, target: Path, manifest: Manifest) -> Manifest:
    """Move a finished staging directory into place; returns the manifest as written (sealed: see ``seal``).

    A fresh target is one rename.  Replacing a bundle (``--force``) removes its manifest first, so a
    half-replaced bundle never looks complete, moves the new files over, drops variant files the old
    manifest listed that the new one does not, and leaves files distilrt did not write alone.
    """
    manifest = seal(manifest, staging)
    manifest.write(staging)
    if not target.exists():
        os.replace(staging, target)
        return manifest
    old = _old_manifest(target)
    moves = []
    for source in (p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        try:  # checked for every file before anything changes: no writing through a symlinked folder
            moves.append((source, inside(target, source.relative_to(staging).as_posix())))
        except BundleError as exc:
            raise OutputExistsError(f"cannot replace the bundle at {target}: {exc}") from exc
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    for source, destination in moves:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)
    if old is not None:
        keep = {v.file for v in (*manifest.variants.values(), *manifest.graphs.values())}
        for variant in (*old.variants.values(), *old.graphs.values()):
            if variant.file not in keep:
                _remove_inside(target, variant.file)
    os.replace(staging / MANIFEST_NAME, target / MANIFEST_NAME)
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _old_manifest(target: Path) -> Manifest | None:
    """The manifest of the bundle being replaced, or None when it cannot be read (nothing of it is removed then)."""
    if not (target / MANIFEST_NAME).is_file():
        return None
    try:
        return Manifest.read(target, sealed=False)
    except BundleError as exc:
        logger.warning("the bundle being replaced has an unreadable manifest (%s); its old files are left in place", exc)
        return None


def _remove_inside(target: Path, name: str) -> None:
    """Delete the old bundle file ``name`` only if it is a plain file inside ``target`` (never through a
    ``..`` path or a symlinked folder; a symlink itself is removed, not what it points to)."""
    try:
        path = inside(target, name)
    except BundleError as exc:
        logger.warning("not removing %r listed by the old manifest: %s", name, exc)
        return
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
