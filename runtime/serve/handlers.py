"""Per-task request handling: parse a Hugging Face Inference API body, call the pipeline on a group of
inputs, shape the answer the way ``huggingface_hub.InferenceClient`` parses it.

A handler never touches the event loop: ``parse`` runs on it (cheap validation only), ``prepare`` on
arrival (tokenizing, off the loop for long texts), ``run`` and ``finish`` in the model's worker thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..tasks.base import Prepared, Task
from . import schemas
from .errors import bad_input

#: largest top_k a request may ask for (bounds response size)
MAX_TOP_K = 1000
#: most fill-mask targets per request
MAX_TARGETS = 1000


@dataclass
class ParsedRequest:
    """A validated request: its inputs, the pipeline options, and how to shape the answer."""

    items: list[Any]
    params: dict[str, Any]
    single: bool
    meta: dict[str, Any] = field(default_factory=dict)


def jsonable(value: Any) -> Any:
    """Plain Python values for JSON: numpy scalars and arrays become floats, ints and lists."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _split(result: Any, count: int, what: str) -> list[Any]:
    """One result per input from a list-in call; guards against a pipeline that answered differently."""
    out = list(result)
    if len(out) != count:
        raise RuntimeError(f"{what} pipeline returned {len(out)} results for {count} inputs")
    return out


class TaskHandler:
    """Base class; one subclass per task.

    ``length_checked``: inputs are tokenized before the model call and refused (422) when longer than the
    model's maximum; off for question answering, whose long contexts the runtime splits into windows.
    """

    task = ""
    length_checked = True
    allowed: dict[str, str] = {}

    def parse(self, data: dict[str, Any], *, max_items: int, max_length: int) -> ParsedRequest:
        raise NotImplementedError

    def prepare(self, pipe: Any, items: Sequence[Any], params: dict[str, Any]) -> Prepared | None:
        """A runtime task's checked and tokenized inputs for ``items`` (None for any other pipeline)."""
        if not isinstance(pipe, Task):
            return None
        return self._prepare(pipe, list(items), self.options(params))

    def _prepare(self, pipe: Task, items: list[Any], params: dict[str, Any]) -> Prepared:
        return pipe.prepare(items, **params)

    def run(self, pipe: Task, prepared: Sequence[Prepared]) -> list[Any]:
        """Run prepared requests (sharing their options) in one model call; one raw result per input, in order."""
        return pipe.run_prepared(Prepared.concat(prepared))

    def options(self, params: dict[str, Any]) -> dict[str, Any]:
        """The call options for a request's parameters."""
        return params

    def call(self, pipe: Any, items: Sequence[Any], params: dict[str, Any]) -> list[Any]:
        """Run the pipeline once on ``items``; one raw result per item, in order."""
        params = self.options(params)
        if len(items) == 1:
            # a single input is passed bare, so the pipeline's answer is unambiguously that input's answer
            return [self._call_one(pipe, items[0], params)]
        return _split(self._call_many(pipe, list(items), params), len(items), self.task)

    def _call_one(self, pipe: Any, item: Any, params: dict[str, Any]) -> Any:
        return pipe(item, **params)

    def _call_many(self, pipe: Any, items: list[Any], params: dict[str, Any]) -> Any:
        return pipe(items, **params)

    def finish(self, raw: Any, meta: dict[str, Any]) -> Any:
        """Shape one raw result for the response (runs in the worker thread)."""
        return jsonable(raw)

    def respond(self, results: list[Any], single: bool) -> Any:
        return results[0] if single else results

    def warmup(self, mask_token: str | None) -> list[Any]:
        return ["warm up"]


class QuestionAnsweringHandler(TaskHandler):
    task = "question-answering"
    length_checked = False  # long contexts are split into windows by the runtime, never refused
    allowed = {
        "top_k": "integer >= 1", "doc_stride": "integer >= 0", "max_answer_len": "integer >= 1",
        "max_seq_len": "integer", "max_question_len": "integer >= 1", "handle_impossible_answer": "boolean",
        "align_to_words": "boolean",
    }

    def parse(self, data: dict[str, Any], *, max_items: int, max_length: int) -> ParsedRequest:
        inputs = schemas.require(data, "inputs")
        if isinstance(inputs, dict):
            items, single = [self._pair(inputs, "inputs")], True
        elif isinstance(inputs, list) and inputs:
            schemas.limit_items(len(inputs), "inputs", max_items)
            items, single = [self._pair(p, f"inputs[{i}]") for i, p in enumerate(inputs)], False
        else:
            raise bad_input('inputs must be an object {"question": "...", "context": "..."} or a non-empty array '
                            f"of them, got {schemas._type_name(inputs)}", param="inputs")
        params = schemas.parameters(data, self.allowed)
        checked: dict[str, Any] = {}
        for name, value in params.items():
            if name in ("handle_impossible_answer", "align_to_words"):
                checked[name] = schemas.boolean(value, f"parameters.{name}")
            elif name == "top_k":
                checked[name] = schemas.integer(value, "parameters.top_k", minimum=1, maximum=MAX_TOP_K)
            elif name == "doc_stride":
                checked[name] = schemas.integer(value, "parameters.doc_stride", minimum=0)
            elif name == "max_seq_len":
                checked[name] = schemas.integer(value, "parameters.max_seq_len", minimum=16, maximum=max_length,
                                                limit_name="the model's max_sequence_length")
            else:
                checked[name] = schemas.integer(value, f"parameters.{name}", minimum=1)
        return ParsedRequest(items, checked, single)

    @staticmethod
    def _pair(value: Any, where: str) -> tuple[str, str]:
        if not isinstance(value, dict):
            raise bad_input(f'{where} must be an object {{"question": "...", "context": "..."}}, '
                            f"got {schemas._type_name(value)}", param=where)
        question = schemas.text(schemas.require(value, "question", where), f"{where}.question")
        context = schemas.text(schemas.require(value, "context", where), f"{where}.context")
        return question, context

    def _call_one(self, pipe: Any, item: Any, params: dict[str, Any]) -> Any:
        return pipe(question=item[0], context=item[1], **params)

    def _call_many(self, pipe: Any, items: list[Any], params: dict[str, Any]) -> Any:
        return pipe(question=[q for q, _ in items], context=[c for _, c in items], **params)

    def _prepare(self, pipe: Task, items: list[Any], params: dict[str, Any]) -> Prepared:
        return pipe.prepare(question=[q for q, _ in items], context=[c for _, c in items], **params)

    def warmup(self, mask_token: str | None) -> list[Any]:
        return [("What is warmed up?", "The model is warmed up before the server reports ready.")]


class FillMaskHandler(TaskHandler):
    task = "fill-mask"
    allowed = {"top_k": "integer >= 1", "targets": "array of strings"}

    def parse(self, data: dict[str, Any], *, max_items: int, max_length: int) -> ParsedRequest:
        items, single = schemas.text_or_list(schemas.require(data, "inputs"), "inputs", max_items=max_items)
        params = schemas.parameters(data, self.allowed)
        if "top_k" in params:
            params["top_k"] = schemas.integer(params["top_k"], "parameters.top_k", minimum=1, maximum=MAX_TOP_K)
        if "targets" in params:
            params["targets"] = schemas.string_list(params["targets"], "parameters.targets", max_items=MAX_TARGETS)
        return ParsedRequest(items, params, single)

    def warmup(self, mask_token: str | None) -> list[Any]:
        return [f"The model is {mask_token or '[MASK]'} before it serves."]


class FeatureExtractionHandler(TaskHandler):
    task = "feature-extraction"
    allowed = {"normalize": "boolean", "pooling": "auto, none, mean, cls or max",
               "truncate": "boolean: cut inputs longer than the model's maximum instead of refusing them",
               "truncation_direction": "Right"}

    def parse(self, data: dict[str, Any], *, max_items: int, max_length: int) -> ParsedRequest:
        items, single = schemas.text_or_list(schemas.require(data, "inputs"), "inputs", max_items=max_items)
        # the feature-extraction spec (and InferenceClient) puts options at the top level, TEI-style;
        # a "parameters" object is accepted too
        nested = data.get("parameters")
        if nested is not None and not isinstance(nested, dict):
            raise bad_input(f"parameters must be an object, got {schemas._type_name(nested)}", param="parameters")
        merged = {k: v for k, v in data.items() if k not in ("inputs", "parameters")}
        merged.update(nested or {})
        params = schemas.parameters({"parameters": merged}, self.allowed)
        meta: dict[str, Any] = {}
        if "truncation_direction" in params:
            schemas.choice(params.pop("truncation_direction"), "truncation_direction", ("Right",))
        if "truncate" in params:
            if schemas.boolean(params.pop("truncate"), "truncate"):
                # cut at the model's maximum (max_sequence_length) rather than refuse
                params["truncation"] = True
                meta["truncate"] = True
        if "normalize" in params:
            params["normalize"] = schemas.boolean(params["normalize"], "normalize")
        if "pooling" in params:
            params["pooling"] = schemas.choice(params["pooling"], "pooling", ("auto", "none", "mean", "cls", "max"))
        return ParsedRequest(items, params, single, meta)

    def options(self, params: dict[str, Any]) -> dict[str, Any]:
        # the Inference API pools as a sentence-transformers model does ("auto"); arrays, not nested lists
        return {"pooling": "auto", **params, "return_tensors": True}

    def call(self, pipe: Any, items: Sequence[Any], params: dict[str, Any]) -> list[Any]:
        params = self.options(params)
        if len(items) == 1:
            return [np.asarray(pipe(items[0], **params))]
        result = pipe(list(items), **params)
        return [np.asarray(row) for row in _split(result, len(items), self.task)]

    def finish(self, raw: Any, meta: dict[str, Any]) -> Any:
        vector = np.asarray(raw, dtype=np.float32)
        if vector.ndim == 3:  # token states come as [1, tokens, hidden]; the API answers [tokens, hidden]
            vector = vector[0]
        if meta.get("encoding") == "base64":
            return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        return vector.tolist()


class TextClassificationHandler(TaskHandler):
    task = "text-classification"
    allowed = {"top_k": "integer >= 1 (default: every label)",
               "function_to_apply": "sigmoid, softmax or none (default: what the model's config declares)"}

    def parse(self, data: dict[str, Any], *, max_items: int, max_length: int) -> ParsedRequest:
        items, single = schemas.text_or_list(schemas.require(data, "inputs"), "inputs", max_items=max_items)
        params = schemas.parameters(data, self.allowed)
        # the Inference API returns every label, best first, unless top_k limits it
        params["top_k"] = (schemas.integer(params["top_k"], "parameters.top_k", minimum=1, maximum=MAX_TOP_K)
                           if "top_k" in params else None)
        if "function_to_apply" in params:
            params["function_to_apply"] = schemas.choice(params["function_to_apply"], "parameters.function_to_apply",
                                                         ("sigmoid", "softmax", "none"))
        return ParsedRequest(items, params, single)

    def finish(self, raw: Any, meta: dict[str, Any]) -> Any:
        return jsonable([raw] if isinstance(raw, dict) else raw)

    def respond(self, results: list[Any], single: bool) -> Any:
        # InferenceClient.text_classification reads element [0] of a list of per-input label lists
        return [results[0]] if single else results


HANDLERS: dict[str, TaskHandler] = {
    h.task: h for h in (QuestionAnsweringHandler(), FillMaskHandler(), FeatureExtractionHandler(),
                        TextClassificationHandler())
}
