"""Model repositories on the Hugging Face hub that already ship ONNX files, turned into bundles.

The layout optimum and transformers.js publish: ``onnx/model.onnx`` (fp32), ``onnx/model_fp16.onnx``,
``onnx/model_quantized.onnx`` (int8), or a single ``model.onnx`` at the repository root, beside
``config.json`` and the tokenizer files.  Only those files are fetched (such repositories often hold a
dozen other quantisations).  The bundle built from them gets a manifest with the SHA-256 of every file
as downloaded and no parity figures: distilrt did not validate these graphs, and the manifest says so.

``huggingface_hub`` is imported here, inside functions, only when a hub id is resolved; it honours
``HF_HUB_OFFLINE``, ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` as usual.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import BundleError, CheckpointError, HubUnreachableError, MissingDependencyError
from .manifest import Manifest, Variant, seal, sha256_file
from .registry import ARCHITECTURES, TASKS, task_from_architectures

logger = logging.getLogger(__name__)

#: Where each precision's graph sits in a hub ONNX repository, preferred location first.
HUB_VARIANT_FILES: dict[str, tuple[str, ...]] = {
    "fp32": ("onnx/model.onnx", "model.onnx"),
    "fp16": ("onnx/model_fp16.onnx", "model_fp16.onnx"),
    "int8": ("onnx/model_quantized.onnx", "model_quantized.onnx"),
}
SUPPORT_FILES: tuple[str, ...] = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
#: What is fetched from a repository: the support files, the graphs above and their external weights.
HUB_PATTERNS: list[str] = [*SUPPORT_FILES, *(f for files in HUB_VARIANT_FILES.values() for f in files),
                           *(f"{f}_data" for files in HUB_VARIANT_FILES.values() for f in files)]
#: Outputs each task's graph must have (as optimum names them).
TASK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "question-answering": ("start_logits", "end_logits"),
    "fill-mask": ("logits",),
    "text-classification": ("logits",),
    "feature-extraction": ("last_hidden_state",),
}
INSTALL_HINT = "pip install 'distilrt[hub]'"


def hub_cache_dir() -> str:
    """The Hugging Face cache folder huggingface_hub reads (for messages)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return os.environ.get("HF_HUB_CACHE") or str(Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    return str(constants.HF_HUB_CACHE)


def fetch_snapshot(model: str, *, revision: str | None, token: str | bool | None,
                   patterns: list[str] | None = None, bundle_cache: Path) -> Path:
    """Download (or find in the Hugging Face cache) the files of ``model`` that a bundle needs.

    Returns the snapshot folder.  Typed errors: :class:`MissingDependencyError` without
    huggingface_hub, :class:`CheckpointError` for a repository or revision that does not exist,
    :class:`HubUnreachableError` when offline (or the hub is down) and the cache lacks the files.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:
        raise MissingDependencyError(
            f"{model!r} is not a local directory; resolving it as a Hugging Face hub id needs huggingface_hub: "
            f"{INSTALL_HINT} (or pass the directory `distilrt export` wrote)"
        ) from exc
    where = f"revision {revision!r} of " if revision else ""
    try:
        return Path(snapshot_download(model, revision=revision, token=token, allow_patterns=patterns or HUB_PATTERNS))
    except GatedRepoError as exc:
        raise CheckpointError(f"{where}{model!r} is gated on the hub; accept its terms there and pass token= "
                              "(or set HF_TOKEN / run `huggingface-cli login`)") from exc
    except RevisionNotFoundError as exc:
        raise CheckpointError(f"{where}{model!r} does not exist on the hub; pass an existing branch, tag or commit "
                              "as revision") from exc
    except RepositoryNotFoundError as exc:
        raise CheckpointError(
            f"{model!r} is neither a local directory nor a model repository on the hub (or it is private: pass "
            "token=); check the spelling, or pass the directory `distilrt export` wrote") from exc
    except (LocalEntryNotFoundError, OSError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set" if offline else f"the hub is unreachable ({type(exc).__name__})"
        raise HubUnreachableError(
            f"cannot resolve model id {model!r}: {why}, and neither the distilrt bundle cache ({bundle_cache}) "
            f"nor the Hugging Face cache ({hub_cache_dir()}) holds {where}it. Fetch it once where the hub is "
            f"reachable: `huggingface-cli download {model}` (or `distilrt info {model}` with HF_HUB_OFFLINE unset), "
            "or pass a bundle directory"
        ) from exc


def onnx_variants(snapshot: Path) -> dict[str, str]:
    """precision -> repository file of the ONNX graphs present in a snapshot folder."""
    found: dict[str, str] = {}
    for precision, candidates in HUB_VARIANT_FILES.items():
        for name in candidates:
            if (snapshot / name).is_file():
                found[precision] = name
                break
    return found


def _link_or_copy(source: Path, destination: Path) -> None:
    """A hard link where the filesystem allows it (no second copy of the weights), else a copy.

    Never a symbolic link: a bundle's files must resolve inside the bundle.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    real = source.resolve()
    try:
        os.link(real, destination)
    except OSError:
        shutil.copyfile(real, destination)


def _read_config(snapshot: Path, model: str) -> dict[str, Any]:
    path = snapshot / "config.json"
    if not path.is_file():
        raise BundleError(f"hub repository {model!r} has ONNX files but no config.json; distilrt needs it to know "
                          "the task and the sequence length")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read config.json of {model!r}: {exc}") from exc
    if not isinstance(config, dict):
        raise BundleError(f"config.json of {model!r} is not a JSON object")
    return config


def _graph_io(path: Path) -> tuple[list[str], list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise BundleError(f"onnxruntime cannot open {path.name} of this repository: {exc}") from exc
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def _pooling(snapshot: Path) -> dict[str, Any] | None:
    """The sentence-transformers pooling a repository declares (mode, normalisation), or None."""
    modules_path = snapshot / "modules.json"
    if not modules_path.is_file():
        return None
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
        pooling_cfg: dict[str, Any] = {}
        for module in modules:
            if str(module.get("type", "")).endswith("Pooling"):
                cfg_path = snapshot / module.get("path", "") / "config.json"
                if cfg_path.is_file():
                    pooling_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise BundleError(f"cannot read the sentence-transformers modules of this repository: {exc}") from exc
    mode = "cls" if pooling_cfg.get("pooling_mode_cls_token") else "max" if pooling_cfg.get("pooling_mode_max_tokens") else "mean"
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    return {"mode": mode, "normalize": normalize, "source": "modules.json"}


def build_bundle(snapshot: Path, target: Path, *, model: str, revision: str | None, task: str | None) -> Manifest:
    """Make a bundle at ``target`` from a snapshot holding ONNX files; return its manifest.

    The files are linked (or copied) into a staging folder beside ``target``, hashed there, and the
    folder is renamed into place once the manifest is written, so a half-built bundle never looks complete.
    """
    found = onnx_variants(snapshot)
    if not found:
        raise BundleError(f"{model!r} holds no ONNX graph in the optimum / transformers.js layout "
                          f"({', '.join(f for files in HUB_VARIANT_FILES.values() for f in files)})")
    config = _read_config(snapshot, model)
    model_type = str(config.get("model_type", ""))
    architectures = config.get("architectures") or []
    config_task = task_from_architectures(architectures)
    chosen_task = task or config_task
    if chosen_task not in TASKS:
        raise CheckpointError(f"cannot tell the task of {model!r} from its config (architectures {architectures}); "
                              f"pass one of {', '.join(TASKS)}")
    if not (snapshot / "tokenizer.json").is_file():
        raise BundleError(f"hub repository {model!r} has no tokenizer.json; distilrt reads only fast tokenizers "
                          f"(export it instead: `distilrt export {model}`)")
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name in SUPPORT_FILES:
            if (snapshot / name).is_file():
                _link_or_copy(snapshot / name, staging / name)
        variants: dict[str, Variant] = {}
        io: tuple[list[str], list[str]] | None = None
        for precision, name in found.items():
            local = f"onnx/{Path(name).name}"
            _link_or_copy(snapshot / name, staging / local)
            details: dict[str, Any] = {"graph": "plain", "validated": False, "origin": "hub", "repo_file": name}
            data = snapshot / f"{name}_data"
            if data.is_file():  # weights stored beside the graph; onnxruntime reads them by this name
                _link_or_copy(data, staging / f"{local}_data")
                details["external_data"] = {"file": f"{local}_data", "sha256": sha256_file(staging / f"{local}_data")}
            path = staging / local
            variants[precision] = Variant(precision=precision, file=local, bytes=path.stat().st_size,
                                          sha256=sha256_file(path), details=details)
            if io is None or precision == "fp32":
                io = _graph_io(path)
        assert io is not None
        inputs, outputs = io
        missing = [o for o in TASK_OUTPUTS[chosen_task] if o not in outputs]
        if missing:
            raise CheckpointError(f"the ONNX graphs of {model!r} have outputs {outputs}, but {chosen_task} needs "
                                  f"{missing}" + (f"; its config says {config_task}" if config_task else ""))
        spec = ARCHITECTURES.find(model_type)
        max_len = int(config.get("max_position_embeddings", 512)) - (2 if model_type in ("roberta", "xlm-roberta") else 0)
        import onnxruntime as ort

        from huggingface_hub import __version__ as hub_version

        manifest = Manifest(
            name=Path(model).name,
            task=chosen_task,
            architecture=str(architectures[0]) if architectures else model_type,
            model_type=model_type,
            source={"model": model, "revision": revision, "commit": snapshot.name, "from_hub": True,
                    "origin": "hub-onnx", "validated": False, "seed": None,
                    "note": "ONNX files as published in the repository; no parity figures (not validated by distilrt)"},
            max_sequence_length=max_len,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            opset=0,  # not read: the runtime does not parse ONNX protobufs itself
            versions={"onnxruntime": ort.__version__, "huggingface_hub": hub_version},
            variants=variants,
            tokenizer={"kind": spec.tokenizer_kind if spec else "unknown", "file": "tokenizer.json"},
            pooling=_pooling(snapshot) if chosen_task == "feature-extraction" else None,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        manifest = seal(manifest, staging)  # every file with its SHA-256, as the runtime requires
        manifest.write(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built bundle %s from the ONNX files of %s (%s); not validated by distilrt",
                target, model, ", ".join(f"{k}={v}" for k, v in found.items()))
    return manifest
