"""Request bodies in, response bodies out: the Hugging Face Inference API handling of ``distilrt serve``,
for engines that hand over a group of requests at once (Triton's dynamic batcher, Ray's ``@serve.batch``).

The parsing, validation, batching of one group into pipeline calls and the shaping of answers are the
serve package's own (:mod:`distilrt.runtime.serve.handlers`, :class:`~distilrt.runtime.serve.models.ServedModel`),
so a deployment answers byte for byte what ``distilrt serve`` answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..serve import schemas
from ..serve.batching import Job
from ..serve.budget import Limits
from ..serve.config import ServeSettings
from ..serve.errors import ServeHTTPError
from ..serve.models import JobResult, ServedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What one request gets: a JSON body, or an HTTP-style status and message."""

    body: bytes | None = None
    status: int = 200
    error: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.body is not None


def served_model(bundle: Path, *, precision: str = "auto", provider: str = "auto", threads: int | None = None,
                 batch_size: int = 8, name: str | None = None) -> ServedModel:
    """A :class:`ServedModel` for ``bundle`` (not loaded yet; call ``.load()``)."""
    from ..serve.server import bundle_model

    model = bundle_model(Path(bundle), precision=precision, provider=provider, threads=threads, batch_size=batch_size)
    if name:
        model.name = name
    return model


class RequestRunner:
    """Runs groups of Hugging Face Inference API request bodies through one loaded model."""

    def __init__(self, model: ServedModel, *, settings: ServeSettings | None = None) -> None:
        if not model.ready:
            raise RuntimeError(f"model {model.name!r} is not loaded; call .load() first")
        self.model = model
        self.settings = settings or ServeSettings()
        self.limits = Limits(max_input_tokens=self.settings.max_input_tokens,
                             max_masks_per_input=self.settings.max_masks_per_input,
                             max_fill_predictions=self.settings.max_fill_predictions,
                             max_sequence_length=model.max_sequence_length)

    @property
    def name(self) -> str:
        return self.model.name

    def parse(self, body: bytes | str | dict[str, Any]) -> Job:
        """One request body as a batch job; raises :class:`ServeHTTPError` (4xx) on bad input."""
        if isinstance(body, dict):
            data = body
        else:
            data = schemas.parse_json_object(body.encode("utf-8") if isinstance(body, str) else body)
        handler = self.model.handler
        parsed = handler.parse(data, max_items=self.settings.max_inputs_per_request,
                               max_length=self.model.max_sequence_length)
        meta = {"single": parsed.single, **parsed.meta, "field": "inputs"}
        # the same token, mask and prediction bounds distilrt serve applies before model time (413/422)
        cost, prepared = self.model.admit(parsed.items, parsed.params, meta, self.limits)
        return Job(items=parsed.items, params=parsed.params, key=schemas.hashable(parsed.params), cost=cost, meta=meta,
                   prepared=prepared)

    def run_jobs(self, jobs: Sequence[Job]) -> list[JobResult | ServeHTTPError]:
        """Run parsed jobs as one batch (grouped by options; a failing request fails alone)."""
        results = self.model.run_batch(list(jobs))
        out: list[JobResult | ServeHTTPError] = []
        for result in results:
            if isinstance(result, (JobResult, ServeHTTPError)):
                out.append(result)
            else:  # an exception the batch runner did not wrap
                out.append(ServeHTTPError(500, f"model {self.name!r} failed on this request ({type(result).__name__})"))
        return out

    def respond(self, job: Job, result: JobResult) -> Any:
        """The response value for a finished job, shaped as ``distilrt serve`` answers it."""
        return self.model.handler.respond(result.outputs, job.meta.get("single", False))

    def run(self, bodies: Sequence[bytes | str | dict[str, Any]]) -> list[Answer]:
        """Answer each body; invalid ones get their own 4xx answer, the rest run together."""
        answers: list[Answer | None] = [None] * len(bodies)
        jobs: list[Job] = []
        where: list[int] = []
        for index, body in enumerate(bodies):
            try:
                jobs.append(self.parse(body))
                where.append(index)
            except ServeHTTPError as exc:
                answers[index] = _error(exc)
        if jobs:
            for index, job, result in zip(where, jobs, self.run_jobs(jobs)):
                if isinstance(result, ServeHTTPError):
                    answers[index] = _error(result)
                else:
                    body = json.dumps(self.respond(job, result), ensure_ascii=False).encode("utf-8")
                    answers[index] = Answer(body=body)
        return [a if a is not None else Answer(status=500, error="no answer", code="server_error") for a in answers]


def _error(exc: ServeHTTPError) -> Answer:
    return Answer(status=exc.status, error=exc.message, code=exc.code)

