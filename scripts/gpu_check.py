"""The GPU check for a new GPU host: providers and versions, then node placement, parity with CPU fp32,
latency with and without IO binding and TensorRT's engine cache, for DistilBERT-QA and MiniLM.

    python scripts/gpu_check.py [--output gpu_check.json] [--qa-bundle DIR] [--minilm-bundle DIR]

Without a GPU every GPU row is skipped with its reason, in seconds, and it still exits 0.
See ``distilrt.benchmarks.gpucheck``.
"""

from __future__ import annotations

import sys

from distilrt.benchmarks.gpucheck import main

if __name__ == "__main__":
    sys.exit(main())
