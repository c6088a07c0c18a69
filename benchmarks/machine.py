"""What produced a result: CPU, cores, ISA flags, versions and thread settings."""

from __future__ import annotations

import os
import platform
from typing import Any

from distilrt.runtime.hostinfo import cpu_info, package_versions, physical_cores

ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "amx_bf16")
VERSIONED = ("distilrt", "onnxruntime", "onnx", "tokenizers", "numpy", "torch", "transformers", "optimum",
             "optimum-onnx", "sentence-transformers", "openvino", "nncf")


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(VERSIONED)}


def machine_info(threads: int) -> dict[str, Any]:
    model, flags = cpu_info()
    return {
        "cpu": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),  # that this process may use
        "isa": [f for f in ISA_FLAGS if f in flags],
        "os": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions(),
        "threads": {"intra_op": threads, "inter_op": 1, "torch": threads,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }
