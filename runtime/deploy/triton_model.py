"""The Triton python-backend model that serves one distilrt bundle.

A repository written by ``distilrt deploy triton`` holds, per bundle, ``<name>/1/model.py`` (two lines that
import :class:`TritonPythonModel` from here), ``<name>/1/bundle/`` (the bundle with its manifest) and
``<name>/config.pbtxt``.  Triton's dynamic batcher hands :meth:`TritonPythonModel.execute` a group of
requests; each carries one or more Hugging Face Inference API bodies (JSON, tensor ``REQUEST``, BYTES)
and gets the same JSON ``distilrt serve`` answers (tensor ``RESPONSE``, BYTES), or a Triton error whose
message starts with the HTTP status ``distilrt serve`` would have used (``422 invalid_input: ...``).

The server's Python needs distilrt (runtime only), onnxruntime, tokenizers and numpy; ``triton_python_backend_utils``
exists only inside Triton's python-backend stub, so it is imported inside the methods.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import BundleError
from ..manifest import MANIFEST_NAME, sha256_file
from .requests import Answer

logger = logging.getLogger(__name__)

INPUT_NAME = "REQUEST"
OUTPUT_NAME = "RESPONSE"
BUNDLE_DIR = "bundle"


def model_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` of a Triton model config (as Triton hands them over) as plain strings."""
    return {k: str(v.get("string_value", "")) for k, v in (model_config.get("parameters") or {}).items()}


def check_bundle_digest(bundle: Path, expected: str) -> None:
    """Refuse a bundle whose manifest is not the one the repository was written with.

    The manifest lists the SHA-256 of every file the runtime reads (and the runtime checks each before
    opening it), so the manifest's own digest seals the whole bundle.
    """
    path = Path(bundle) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{path} is missing: the Triton model directory has no bundle; rewrite the repository "
                          "with `distilrt deploy triton`")
    actual = sha256_file(path)
    if expected and actual != expected:
        raise BundleError(f"{path} has SHA-256 {actual}, but the repository was written for {expected}: the bundle "
                          "was changed after `distilrt deploy triton`; rewrite the repository from the bundle")


def triton_error(pb_utils: Any, answer: "Answer") -> Any:
    """A Triton error for a failed answer: 4xx as INVALID_ARG (HTTP 400), 404 NOT_FOUND, 503 UNAVAILABLE.

    The message starts with the status and code ``distilrt serve`` would have answered.
    """
    message = f"{answer.status} {answer.code}: {answer.error}"
    kinds = {404: "NOT_FOUND", 503: "UNAVAILABLE"}
    kind = kinds.get(answer.status, "INVALID_ARG" if 400 <= answer.status < 500 else "INTERNAL")
    code = getattr(pb_utils.TritonError, kind, None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


def bls_served_model(bundle: Path, name: str, params: dict[str, str], *, batch_size: int) -> Any:
    """A served model whose pipeline runs its graph in the repository's onnxruntime model."""
    from ..manifest import Manifest
    from ..serve.models import ServedModel
    from .triton_onnx import bls_pipeline

    manifest = Manifest.read(bundle)
    return ServedModel(name=name, task=manifest.task, loader=lambda: bls_pipeline(bundle, params, batch_size=batch_size),
                       max_sequence_length=manifest.max_sequence_length, pooling=manifest.pooling)


def _optional_int(value: str) -> int | None:
    return int(value) if value.strip() else None


class TritonPythonModel:
    """Triton python-backend entry points: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, Any]) -> None:
        from ..serve.config import ServeSettings
        from .requests import RequestRunner, served_model

        config = json.loads(args["model_config"])
        params = model_parameters(config)
        bundle = Path(args["model_repository"]) / str(args["model_version"]) / BUNDLE_DIR
        check_bundle_digest(bundle, params.get("manifest_sha256", ""))
        batch_size = int(params.get("pipeline_batch_size", "8") or 8)
        if params.get("bls_model"):  # onnxruntime-backend repository: Triton runs the graph, called through BLS
            model = bls_served_model(bundle, config["name"], params, batch_size=batch_size)
        else:
            model = served_model(bundle, name=config["name"], precision=params.get("precision", "auto"),
                                 provider=params.get("provider", "cpu"),
                                 threads=_optional_int(params.get("threads", "")), batch_size=batch_size)
        model.load()  # builds the pipeline and runs one warm-up call
        settings = ServeSettings(max_inputs_per_request=int(params.get("max_inputs_per_request", "256") or 256))
        self.runner = RequestRunner(model, settings=settings)
        logger.info("distilrt model %r (%s) ready in Triton", model.name, model.task)

    def execute(self, requests: list[Any]) -> list[Any]:
        import numpy as np
        import triton_python_backend_utils as pb_utils

        # every body of every request in this group runs in one batch; answers go back per request
        counts: list[int] = []
        bodies: list[bytes] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT_NAME)
            values = [] if tensor is None else [v for v in tensor.as_numpy().reshape(-1)]
            counts.append(len(values))
            bodies.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values)
        answers = self.runner.run(bodies)
        responses = []
        offset = 0
        for count in counts:
            mine = answers[offset:offset + count]
            offset += count
            if count == 0:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=triton_error(pb_utils, Answer(
                        status=400, code="bad_request",
                        error=f"the request has no {INPUT_NAME} tensor; send the JSON body as BYTES"))))
                continue
            failed = next((a for a in mine if not a.ok), None)
            if failed is not None:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=triton_error(pb_utils, failed)))
                continue
            out = np.array([[a.body] for a in mine], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, out)]))
        return responses

    def finalize(self) -> None:
        logger.info("distilrt model unloaded")
