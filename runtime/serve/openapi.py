"""The OpenAPI document the service publishes at ``/openapi.json``: one operation per served model.

Bodies are parsed by hand (see :mod:`.schemas`), so the document is written here rather than derived from
pydantic models; it states the same limits the handlers enforce (item counts, ``top_k`` ranges, option
names), which is what lets a schema-driven fuzzer such as schemathesis probe every route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .handlers import MAX_TARGETS, MAX_TOP_K

if TYPE_CHECKING:
    from .app import ServeState

_TEXT = {"type": "string", "minLength": 1}
_ERROR = {"description": "refused; the body says why and what to change",
          "content": {"application/json": {"schema": {"type": "object"}}}}
_ERRORS = {str(code): _ERROR for code in (400, 401, 404, 408, 413, 422, 503)}


def _texts(max_items: int) -> dict[str, Any]:
    return {"oneOf": [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": max_items}]}


def _top_k() -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K}


def _body(task: str, *, max_items: int, max_length: int) -> dict[str, Any]:
    """The JSON schema of a Hugging Face Inference API request for ``task``."""
    if task == "question-answering":
        pair = {"type": "object", "required": ["question", "context"],
                "properties": {"question": _TEXT, "context": _TEXT}}
        inputs = {"oneOf": [pair, {"type": "array", "items": pair, "minItems": 1, "maxItems": max_items}]}
        parameters = {"top_k": _top_k(), "doc_stride": {"type": "integer", "minimum": 0},
                      "max_answer_len": {"type": "integer", "minimum": 1},
                      "max_seq_len": {"type": "integer", "minimum": 16, "maximum": max_length},
                      "max_question_len": {"type": "integer", "minimum": 1},
                      "handle_impossible_answer": {"type": "boolean"}, "align_to_words": {"type": "boolean"}}
    elif task == "fill-mask":
        inputs = _texts(max_items)
        parameters = {"top_k": _top_k(), "targets": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT,
                                                                        "minItems": 1, "maxItems": MAX_TARGETS}]}}
    elif task == "feature-extraction":
        inputs = _texts(max_items)
        parameters = {"normalize": {"type": "boolean"}, "truncate": {"type": "boolean"},
                      "pooling": {"enum": ["auto", "none", "mean", "cls", "max"]},
                      "truncation_direction": {"enum": ["Right"]}}
    else:
        inputs = _texts(max_items)
        parameters = {"top_k": _top_k(), "function_to_apply": {"enum": ["sigmoid", "softmax", "none"]}}
    return {"type": "object", "required": ["inputs"],
            "properties": {"inputs": inputs, "parameters": {"type": "object", "properties": parameters,
                                                            "additionalProperties": False}}}


def openapi_document(state: "ServeState") -> dict[str, Any]:
    """The OpenAPI 3.0 document for the models ``state`` serves."""
    settings = state.settings
    paths: dict[str, Any] = {}
    for name, model in sorted(state.models.items()):
        body = _body(model.task, max_items=settings.max_inputs_per_request, max_length=model.max_sequence_length)
        paths[f"/models/{name}"] = {"post": {
            "operationId": f"infer_{name}", "summary": f"{model.task} with {name} (Hugging Face Inference API)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "the answer, shaped as the Inference API shapes it",
                                  "content": {"application/json": {"schema": {}}}}, **_ERRORS},
        }}
    if any(m.task == "feature-extraction" for m in state.models.values()):
        embedders = sorted(n for n, m in state.models.items() if m.task == "feature-extraction")
        paths["/v1/embeddings"] = {"post": {
            "operationId": "openai_embeddings", "summary": "OpenAI embeddings",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["model", "input"],
                "properties": {"model": {"enum": embedders}, "input": _texts(settings.max_inputs_per_request),
                               "encoding_format": {"enum": ["float", "base64"]}}}}}},
            "responses": {"200": {"description": "one embedding per input",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}, **_ERRORS},
        }}
    for path, what in (("/health", "liveness"), ("/ready", "readiness"), ("/v1/models", "served models")):
        paths[path] = {"get": {"operationId": path.strip("/").replace("/", "_"), "summary": what,
                               "responses": {"200": {"description": what}, "503": _ERROR}}}
    return {"openapi": "3.0.3", "info": {"title": "distilrt", "version": "1"}, "paths": paths}
