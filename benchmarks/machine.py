"""What produced a result: CPU, cores, ISA flags, versions and thread settings."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "amx_bf16")
VERSIONED = ("distilrt", "onnxruntime", "onnx", "tokenizers", "numpy", "torch", "transformers", "optimum",
             "optimum-onnx", "sentence-transformers")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine_info(threads: int) -> dict[str, Any]:
    model, flags = _cpuinfo()
    return {
        "cpu": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "os": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions(),
        "threads": {"intra_op": threads, "inter_op": 1, "torch": threads,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }
