"""What distilrt knows: tasks, precisions, architectures and the seed checkpoints.

One registry of frozen dataclasses.  Lookups fail with the list of known names; registering a name
twice fails at import time rather than shadowing the first entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

TASKS: tuple[str, ...] = ("question-answering", "fill-mask", "feature-extraction", "text-classification")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8-static")

#: Where each precision lives inside a bundle (the layout transformers.js and optimum read).
VARIANT_FILES: dict[str, str] = {
    "fp32": "onnx/model.onnx",
    "fp16": "onnx/model_fp16.onnx",
    "int8": "onnx/model_quantized.onnx",  # dynamic: activation scales computed per call (ORT CPU only)
    "int8-static": "onnx/model_qdq.onnx",  # calibrated, standard QuantizeLinear/DequantizeLinear (any engine)
}

#: Model head class suffix -> task, used to read the task from a checkpoint's config.
ARCHITECTURE_SUFFIX_TASKS: dict[str, str] = {
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
    "ForSequenceClassification": "text-classification",
    "Model": "feature-extraction",
}


class Registry(Generic[T]):
    """A name -> frozen spec map that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self._kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self._kind} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def find(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items


@dataclass(frozen=True)
class ArchitectureSpec:
    """A model family distilrt can export and run."""

    model_type: str  # config.json "model_type"
    tokenizer_kind: str  # "wordpiece" or "bpe"
    uses_token_type_ids: bool  # informative only: feeds always follow session.get_inputs()


@dataclass(frozen=True)
class CheckpointSpec:
    """A named checkpoint distilrt exists for."""

    name: str
    model_type: str
    tasks: tuple[str, ...]  # first one is the default
    architecture: str
    tokenizer_kind: str

    @property
    def default_task(self) -> str:
        return self.tasks[0]


ARCHITECTURES: Registry[ArchitectureSpec] = Registry("architecture")
for _spec in (
    ArchitectureSpec("distilbert", "wordpiece", uses_token_type_ids=False),
    ArchitectureSpec("bert", "wordpiece", uses_token_type_ids=True),
    ArchitectureSpec("roberta", "bpe", uses_token_type_ids=False),
):
    ARCHITECTURES.register(_spec.model_type, _spec)

CHECKPOINTS: Registry[CheckpointSpec] = Registry("checkpoint")
for _ckpt in (
    CheckpointSpec(
        "distilbert-base-uncased-distilled-squad", "distilbert", ("question-answering",),
        "DistilBertForQuestionAnswering", "wordpiece",
    ),
    CheckpointSpec(
        "distilbert-base-cased-distilled-squad", "distilbert", ("question-answering", "feature-extraction"),
        "DistilBertForQuestionAnswering", "wordpiece",
    ),
    CheckpointSpec(
        "distilbert-base-uncased", "distilbert", ("fill-mask", "feature-extraction"),
        "DistilBertForMaskedLM", "wordpiece",
    ),
    CheckpointSpec(
        "distilroberta-base", "roberta", ("fill-mask", "feature-extraction"),
        "RobertaForMaskedLM", "bpe",
    ),
):
    CHECKPOINTS.register(_ckpt.name, _ckpt)


def lookup_checkpoint(model: str) -> CheckpointSpec | None:
    """The seed spec for a hub id (``distilbert/…`` org prefix allowed), or None for other models."""
    return CHECKPOINTS.find(model) or CHECKPOINTS.find(model.rsplit("/", 1)[-1] if "/" in model else "")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise UnknownNameError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return task


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UnknownNameError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return precision


def task_from_architectures(architectures: list[str] | None) -> str | None:
    """Read the task from a config's ``architectures`` list (``DistilBertForMaskedLM`` -> fill-mask)."""
    for arch in architectures or ():
        for suffix, task in ARCHITECTURE_SUFFIX_TASKS.items():
            if arch.endswith(suffix):
                return task
    return None
