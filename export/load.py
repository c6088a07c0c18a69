"""Resolve a MODEL argument (hub id or local directory) to a checkpoint directory, task and spec."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilrt.runtime.errors import CheckpointError, HubUnreachableError
from distilrt.runtime.validation import read_json_object
from distilrt.runtime.registry import (
    ARCHITECTURES,
    CheckpointSpec,
    check_task,
    lookup_checkpoint,
    task_from_architectures,
)

logger = logging.getLogger(__name__)

# Files a checkpoint needs for export; weights in either format.
_HUB_PATTERNS = [
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "vocab.json", "merges.txt", "model.safetensors", "modules.json", "1_Pooling/config.json",
    "sentence_bert_config.json", "config_sentence_transformers.json",
]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on local disk, ready to export."""

    source: str  # what the user passed
    path: Path  # local directory holding config.json and weights
    revision: str | None
    from_hub: bool
    config: dict[str, Any]
    task: str
    spec: CheckpointSpec | None

    @property
    def model_type(self) -> str:
        return str(self.config["model_type"])

    @property
    def architecture(self) -> str:
        if self.spec is not None:
            return self.spec.architecture
        archs = self.config.get("architectures") or []
        return str(archs[0]) if archs else f"{self.model_type}"

    @property
    def max_sequence_length(self) -> int:
        return int(self.config.get("max_position_embeddings", 512)) - (2 if self.model_type == "roberta" else 0)


def _download(model: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = _HUB_PATTERNS + ["pytorch_model.bin"]
    try:
        # The local cache first: offline users who downloaded once keep working.
        return Path(snapshot_download(model, revision=revision, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(model, revision=revision, allow_patterns=patterns))
    except RepositoryNotFoundError as exc:
        raise CheckpointError(
            f"{model!r} is neither a local directory nor a model on the hub; check the spelling or pass a "
            "directory that holds config.json and the weights"
        ) from exc
    except (LocalEntryNotFoundError, OSError) as exc:
        raise HubUnreachableError(
            f"{model!r} is not a local directory and the model hub is unreachable from here ({type(exc).__name__}). "
            "Download the checkpoint where there is network (e.g. `huggingface-cli download "
            f"{model} --local-dir DIR`) and pass DIR instead, or set HF_HOME to a cache that holds it"
        ) from exc


def resolve_checkpoint(model: str, *, task: str = "auto", revision: str | None = None) -> Checkpoint:
    """Find the checkpoint, read its config and decide the task.

    ``task="auto"`` takes the seed registry's default for a known hub id, else the head named in
    ``config.json``'s ``architectures`` (a sentence-transformers directory is feature-extraction).
    """
    if task != "auto":
        check_task(task)
    local = Path(model).expanduser()
    if local.is_dir():
        path, from_hub = local.resolve(), False
    elif local.exists():
        raise CheckpointError(f"{model!r} is a file; pass the checkpoint directory that holds config.json")
    elif model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise CheckpointError(f"checkpoint directory {model!r} does not exist")
    else:
        path, from_hub = _download(model, revision), True

    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{str(path)!r} has no config.json, so it is not a transformers checkpoint; pass the directory "
            "written by `save_pretrained` (config.json, tokenizer files and model.safetensors)"
        )
    config = read_json_object(config_path, error=CheckpointError, what="a transformers config",
                              fix="pass the directory written by `save_pretrained`")

    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise CheckpointError(
            f"{model!r} has model_type {model_type!r}, which distilrt does not export; supported: "
            f"{', '.join(ARCHITECTURES.names())} (DistilBERT, BERT and RoBERTa encoders)"
        )
    if not any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise CheckpointError(f"{str(path)!r} has no model.safetensors or pytorch_model.bin weights")

    spec = lookup_checkpoint(model) if from_hub else None
    if task == "auto":
        if spec is not None:
            task = spec.default_task
        elif (path / "modules.json").is_file():
            task = "feature-extraction"
        else:
            found = task_from_architectures(config.get("architectures"))
            if found is None:
                raise CheckpointError(
                    f"cannot tell the task of {model!r} from its config (architectures="
                    f"{config.get('architectures')}); pass --task"
                )
            task = found
    elif spec is not None and task not in spec.tasks:
        logger.warning("%s is known for %s; exporting it for %s as asked", model, ", ".join(spec.tasks), task)
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file() and not (path / "vocab.json").is_file():
        raise CheckpointError(f"{str(path)!r} has no tokenizer files (tokenizer.json, vocab.txt or vocab.json)")
    return Checkpoint(source=model, path=path, revision=revision, from_hub=from_hub, config=config, task=task, spec=spec)
