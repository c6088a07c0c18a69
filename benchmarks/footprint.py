"""Cold start, import time, peak RSS, bundle size on disk and installed size.

Cold start is a new Python process from launch until the first answer is printed; each child
reports its own import time, load time and peak RSS (``ru_maxrss``), and the parent times the whole
process.  Installed size sums the files of each distribution in a dependency closure as installed
here, for a runtime-only environment and for one with torch + transformers + optimum.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# The child's own high-water mark.  Not ru_maxrss: Linux carries it across fork + exec, so a child of
# a large parent would report the parent's size.
_PEAK_RSS = r"""
def peak_rss_mb():
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_CHILD_DISTILRT = r"""
import json, sys, time
t0 = time.perf_counter()
PEAK_RSS
from distilrt.runtime import pipeline
t1 = time.perf_counter()
qa = pipeline("question-answering", model=sys.argv[1], precision=sys.argv[2], provider="cpu", threads=int(sys.argv[3]))
t2 = time.perf_counter()
answer = qa(question=sys.argv[4], context=sys.argv[5])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2,
                  "rss_mb": peak_rss_mb(), "answer": answer["answer"]}))
"""

_CHILD_TRANSFORMERS = r"""
import json, sys, time
t0 = time.perf_counter()
PEAK_RSS
import torch
from transformers import pipeline
t1 = time.perf_counter()
torch.set_num_threads(int(sys.argv[3]))
qa = pipeline("question-answering", model=sys.argv[1], device="cpu")
t2 = time.perf_counter()
answer = qa(question=sys.argv[4], context=sys.argv[5])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2,
                  "rss_mb": peak_rss_mb(), "answer": answer["answer"]}))
"""

QUESTION = "What is a good example of a question answering dataset?"
CONTEXT = ("Extractive Question Answering is the task of extracting an answer from a text given a question. "
           "An example of a question answering dataset is the SQuAD dataset, which is entirely based on that task.")


def _child(code: str, args: list[str]) -> dict[str, Any]:
    code = code.replace("PEAK_RSS", _PEAK_RSS)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_s"] = wall
    return report


def cold_start(*, checkpoint: Path, bundle: Path, precision: str, threads: int, repeats: int) -> dict[str, Any]:
    """Median cold start of distilrt (``precision``) and of the transformers pipeline on the same weights."""
    systems = {
        f"distilrt-{precision}": (_CHILD_DISTILRT, [str(bundle), precision]),
        "transformers-fp32": (_CHILD_TRANSFORMERS, [str(checkpoint), "fp32"]),
    }
    found: dict[str, Any] = {}
    for name, (code, args) in systems.items():
        runs = [_child(code, [args[0], args[1], str(threads), QUESTION, CONTEXT]) for _ in range(repeats)]
        found[name] = {key: round(statistics.median(r[key] for r in runs), 4)
                       for key in ("process_s", "import_s", "load_s", "first_call_s", "rss_mb")}
        found[name]["runs"] = repeats
    return found


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
