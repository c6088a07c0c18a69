"""Inference routes in the two dialects real clients speak unchanged.

- Hugging Face Inference API: ``POST /models/{name}`` with ``{"inputs": ..., "parameters": {...}}``
  (``huggingface_hub.InferenceClient(model="http://HOST:PORT/models/NAME")``).
- OpenAI: ``POST /v1/embeddings`` and ``GET /v1/models`` (``openai.OpenAI(base_url="http://HOST:PORT/v1")``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from . import schemas
from .budget import Limits
from .batching import BatcherClosedError, Job, QueueFullError
from .errors import ServeHTTPError, bad_input
from .handlers import ParsedRequest
from .models import JobResult, ServedModel

if TYPE_CHECKING:
    from .app import ServeState


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without buffering all of it, and (408)
    a body that does not arrive within ``timeout_s``."""
    if timeout_s is None:
        return await _read_body(request, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ServeHTTPError(408, f"the request body did not arrive within {timeout_s:g}s (--body-timeout); send it "
                                  "whole, or raise the limit", code="request_timeout") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ServeHTTPError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_large(size, limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ServeHTTPError:
    return ServeHTTPError(413, f"request body is {size} bytes or more; this server accepts at most {limit} bytes "
                               "(--max-body-bytes); split the inputs over several requests", code="payload_too_large")


async def submit(state: "ServeState", model: ServedModel, parsed: ParsedRequest, meta: dict[str, Any]) -> JobResult:
    """Queue the request on the model's batcher and wait for its own result."""
    if model.batcher is None:
        raise ServeHTTPError(503, f"model {model.name!r} is not accepting requests", code="unavailable")
    job_meta = {"single": parsed.single, **parsed.meta, **meta}
    limits = Limits(max_input_tokens=state.settings.max_input_tokens,
                    max_masks_per_input=state.settings.max_masks_per_input,
                    max_fill_predictions=state.settings.max_fill_predictions,
                    max_sequence_length=model.max_sequence_length)
    if _chars(parsed.items) > _INLINE_MEASURE_CHARS:  # long texts are tokenized off the event loop
        cost, prepared = await asyncio.to_thread(model.admit, parsed.items, parsed.params, job_meta, limits)
    else:
        cost, prepared = model.admit(parsed.items, parsed.params, job_meta, limits)
    job = Job(items=parsed.items, params=parsed.params, key=schemas.hashable(parsed.params), cost=cost,
              meta=job_meta, prepared=prepared)
    retry = {"Retry-After": str(state.settings.retry_after_s)}
    try:
        return await model.batcher.submit(job)
    except QueueFullError as exc:
        state.metrics.rejected.inc(model=model.name)
        raise ServeHTTPError(503, f"{exc}; retry after {state.settings.retry_after_s}s", code="queue_full",
                             headers=retry) from None
    except BatcherClosedError as exc:
        raise ServeHTTPError(503, f"{exc}: the server is shutting down", code="shutting_down", headers=retry) from None


#: requests with more text than this are measured in a worker thread rather than on the event loop
_INLINE_MEASURE_CHARS = 8192


def _chars(items: list[Any]) -> int:
    return sum(len(i) if isinstance(i, str) else sum(len(p) for p in i) for i in items)


def register_routes(app: FastAPI, state: "ServeState") -> None:
    """Attach the inference routes to ``app``."""
    settings = state.settings

    @app.post("/models/{name:path}")
    async def hf_inference(name: str, request: Request) -> JSONResponse:
        """Hugging Face Inference API: the task is the model's own, the body shape follows it."""
        model = state.model(name)
        request.state.distilrt_model = model.name
        data = schemas.parse_json_object(await read_body(request, settings.max_body_bytes, settings.body_timeout_s))
        handler = model.handler
        parsed = handler.parse(data, max_items=settings.max_inputs_per_request, max_length=model.max_sequence_length)
        result = await submit(state, model, parsed, {"field": "inputs"})
        return JSONResponse(handler.respond(result.outputs, parsed.single))

    @app.get("/v1/models")
    async def openai_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(state, m) for m in state.models.values()]}

    @app.get("/v1/models/{model_id:path}")
    async def openai_model(model_id: str) -> dict[str, Any]:
        return _model_card(state, state.model(model_id))

    @app.post("/v1/embeddings")
    async def openai_embeddings(request: Request) -> JSONResponse:
        """OpenAI embeddings from a feature-extraction model: one pooled vector per input."""
        data = schemas.parse_json_object(await read_body(request, settings.max_body_bytes, settings.body_timeout_s))
        name = schemas.require(data, "model")
        if not isinstance(name, str):
            raise bad_input(f"model must be a string naming a served model, got {schemas._type_name(name)}",
                            param="model")
        model = state.model(name)
        request.state.distilrt_model = model.name
        if model.task != "feature-extraction":
            embedders = sorted(n for n, m in state.models.items() if m.task == "feature-extraction")
            raise bad_input(f"model {name!r} serves {model.task}; embeddings need a feature-extraction model "
                            f"(served here: {', '.join(embedders) or 'none'})", param="model")
        raw_input = schemas.require(data, "input")
        if isinstance(raw_input, list) and raw_input and not all(isinstance(v, str) for v in raw_input):
            raise bad_input("input must be a string or an array of strings; token-id arrays are not accepted",
                            param="input")
        items, _single = schemas.text_or_list(raw_input, "input", max_items=settings.max_inputs_per_request)
        encoding = data.get("encoding_format") or "float"
        schemas.choice(encoding, "encoding_format", ("float", "base64"))
        if data.get("dimensions") is not None:
            raise bad_input("dimensions is not supported: the model's embeddings keep their full size",
                            param="dimensions")
        # a sentence-transformers bundle pools as it was trained to; any other encoder gets mean pooling
        params = {"pooling": "auto" if model.pooling else "mean"}
        parsed = ParsedRequest(items, params, single=False)
        result = await submit(state, model, parsed, {"field": "input", "encoding": encoding})
        for vector in result.outputs:
            if isinstance(vector, list) and vector and isinstance(vector[0], list):
                raise ServeHTTPError(500, f"model {name!r} returned token-level features, not one vector per input")
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.outputs)],
            "model": model.name,
            "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        })


def _model_card(state: "ServeState", model: ServedModel) -> dict[str, Any]:
    return {"id": model.name, "object": "model", "created": int(state.started), "owned_by": "distilrt",
            "task": model.task}
