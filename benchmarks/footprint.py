"""Cold start, import time, peak RSS, bundle size on disk and installed size.

Cold start is a new Python process from launch until the first answer (measured by :mod:`.coldstart`).
Installed size sums the files of each distribution in a dependency closure as installed here, for a
runtime-only environment and for one with torch + transformers + optimum.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any

from .coldstart import measure


def cold_start(*, checkpoint: Path, bundle: Path, precision: str, repeats: int) -> dict[str, Any]:
    """Median cold start of distilrt (``precision``) and of the transformers pipeline on the same weights.

    Each run is a new process answering one question (:func:`.coldstart.measure`): the child reports
    import / load / first-answer times and its peak RSS (VmHWM), the parent the whole process's wall
    time.  Returns ``{"skipped": reason}`` when a child fails.
    """
    try:
        found = measure(bundle=bundle, checkpoint=checkpoint, precision=precision, repeats=repeats)
    except (SystemExit, RuntimeError, OSError) as exc:
        return {"skipped": f"cold-start child failed: {str(exc)[-400:]}"}
    names = {"distilrt (optimised-model cache warm)": f"distilrt-{precision} (optimised-model cache warm)",
             "distilrt (no optimised-model cache)": f"distilrt-{precision}",
             "transformers.pipeline": "transformers-fp32"}
    result: dict[str, Any] = {}
    for label, figures in found.items():
        result[names.get(label, label)] = {
            "process_s": round(figures["process_wall_s"], 4), "import_s": round(figures["import_s"], 4),
            "load_s": round(figures["load_s"], 4), "first_call_s": round(figures["first_answer_s"], 4),
            "rss_mb": round(figures["peak_rss_mb"], 1), "runs": repeats}
    return result


def dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in Path(path).rglob(pattern) if p.is_file())


def bundle_sizes(*, bundle: Path, optimum_dir: Path, checkpoint: Path) -> dict[str, int]:
    """Bytes on disk of each model file: distilrt variants, optimum's files, the PyTorch weights."""
    sizes = {f"distilrt {p.name}": p.stat().st_size for p in sorted((bundle / "onnx").glob("*.onnx"))}
    sizes["distilrt bundle total"] = dir_bytes(bundle)
    for name in ("model.onnx", "model_quantized.onnx"):
        if (optimum_dir / name).is_file():
            sizes[f"optimum {name}"] = (optimum_dir / name).stat().st_size
    weights = [p for p in checkpoint.iterdir() if p.suffix in (".safetensors", ".bin")]
    sizes["PyTorch weights"] = sum(p.stat().st_size for p in weights)
    return sizes


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _closure(roots: list[str]) -> set[str]:
    """Installed distributions reachable from ``roots`` through unconditional requirements."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue  # optional extras are not installed by a plain `pip install name`
            match = _REQ_NAME.match(requirement)
            if match:
                todo.append(match.group(1))
    return seen


def _dist_bytes(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for file in dist.files or []:
        try:
            total += Path(dist.locate_file(file)).stat().st_size
        except OSError:
            continue
    return total


def installed_sizes() -> dict[str, Any]:
    """MB installed for the runtime alone and for torch + transformers + optimum (as installed here)."""
    runtime = _closure(["numpy", "onnxruntime", "tokenizers"])
    heavy = _closure(["torch", "transformers", "optimum", "optimum-onnx", "onnxruntime"])
    mb = {name: _dist_bytes(name) / 1e6 for name in runtime | heavy}
    return {
        "runtime_only_mb": round(sum(mb[n] for n in runtime), 1),
        "torch_transformers_optimum_mb": round(sum(mb[n] for n in heavy), 1),
        "runtime_only_packages": sorted(runtime),
        "largest": {n: round(v, 1) for n, v in sorted(mb.items(), key=lambda kv: -kv[1])[:6]},
    }
