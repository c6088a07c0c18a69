"""A served model: its pipeline, its batcher, and the batch runner that keeps each request's failure its own.

Models are only ever the bundles named when the server started; nothing a request says is used as a
path or a model to load.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import InputError
from ..tasks.base import Prepared
from .batching import Job, MicroBatcher
from .budget import Limits, Tokens, measure
from .errors import ServeHTTPError, bad_input
from .handlers import HANDLERS, TaskHandler
from .metrics import ServeMetrics

logger = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What one request gets back from a batch: its shaped outputs and how many tokens its inputs had."""

    outputs: list[Any]
    tokens: int = 0


@dataclass
class ServedModel:
    """One model the server answers for.  ``loader`` builds the pipeline (called once, off the event loop)."""

    name: str
    task: str
    loader: Callable[[], Any]
    max_sequence_length: int = 512
    pooling: dict[str, Any] | None = None
    pipeline: Any = None
    mask_token: str | None = None
    ready: bool = False
    load_error: str | None = None
    batcher: MicroBatcher | None = field(default=None, repr=False)
    metrics: ServeMetrics | None = field(default=None, repr=False)

    @property
    def handler(self) -> TaskHandler:
        return HANDLERS[self.task]

    def load(self) -> None:
        """Build the pipeline and run one warm-up call (blocking)."""
        started = time.perf_counter()
        self.pipeline = self.loader()
        self.max_sequence_length = int(getattr(self.pipeline, "max_sequence_length", None) or self.max_sequence_length)
        self.mask_token = getattr(self.pipeline, "mask_token", None) or self.mask_token
        items = self.handler.warmup(self.mask_token)
        self.handler.call(self.pipeline, items, {})
        self.ready = True
        logger.info("model %r (%s) loaded and warmed up in %.2fs", self.name, self.task, time.perf_counter() - started)

    def make_batcher(self, *, max_batch_size: int, max_wait_ms: float, max_queue: int,
                     max_batch_tokens: int | None = None, large_request_tokens: int | None = None) -> MicroBatcher:
        metrics = self.metrics

        def report(depth: int) -> None:
            if metrics is not None:
                metrics.queue_depth.set(depth, model=self.name)

        self.batcher = MicroBatcher(self.name, self.run_batch, max_batch_size=max_batch_size,
                                    max_wait_ms=max_wait_ms, max_queue=max_queue, on_queue_depth=report,
                                    max_batch_tokens=max_batch_tokens,
                                    large_cost=large_request_tokens or self.max_sequence_length)
        return self.batcher

    def admit(self, items: Sequence[Any], params: dict[str, Any], meta: dict[str, Any],
              limits: Limits) -> tuple[int, Prepared | None]:
        """The request prepared for the model and its token cost; raises the 4xx that refuses it.

        The task checks and tokenizes the inputs here, once (its own errors are 422); the limits of
        :mod:`.budget` read those tokens; the batch runs the same prepared inputs.
        """
        try:
            prepared = self.handler.prepare(self.pipeline, items, params)
        except ServeHTTPError:
            raise
        except Exception as exc:  # the task's refusal (422), or a fault (500, logged)
            raise _as_http_error(exc, self.name) from None
        if prepared is None:
            tokens = Tokens.words(self.task, items, self.mask_token)
        else:
            tokens = Tokens.of(prepared, getattr(self.pipeline.tokenizer, "mask_id", None))
        cost = measure(self.task, tokens, params, meta, replace(limits, max_sequence_length=self.max_sequence_length))
        return cost, prepared

    # -- worker thread -------------------------------------------------------------------------------

    def run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        """Run a batch in the worker thread: one :class:`JobResult` or exception per job, in order.

        Jobs were measured and bounded on arrival.  They are grouped by their options so that each group
        is one pipeline call.  If a group call fails, its jobs are retried one at a time so that only the
        request that caused the failure gets the error; every other job still gets its own answer.
        """
        results: list[Any] = [None] * len(jobs)
        groups: dict[Any, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(index)
        for members in groups.values():
            try:
                outputs = self._call([jobs[i] for i in members])
            except Exception as exc:  # isolate the culprit below
                if len(members) == 1:
                    results[members[0]] = _as_http_error(exc, self.name)
                    continue
                logger.info("batch call for %r failed; retrying its %d requests one by one", self.name, len(members))
                for i in members:
                    try:
                        results[i] = JobResult(self._call([jobs[i]])[0], jobs[i].cost)
                    except Exception as exc_i:  # this request's own error
                        results[i] = _as_http_error(exc_i, self.name)
                continue
            for i, out in zip(members, outputs):
                results[i] = JobResult(out, jobs[i].cost)
        return results

    def _call(self, jobs: Sequence[Job]) -> list[list[Any]]:
        """One pipeline call for jobs that share options; outputs split back per job."""
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        if all(job.prepared is not None for job in jobs):
            raw = self.handler.run(self.pipeline, [job.prepared for job in jobs])
        else:
            raw = self.handler.call(self.pipeline, items, dict(jobs[0].params))
        if self.metrics is not None:
            self.metrics.batch_inputs.observe(len(items), model=self.name)
            self.metrics.batch_requests.observe(len(jobs), model=self.name)
            self.metrics.inference.observe(time.perf_counter() - started, model=self.name)
        out: list[list[Any]] = []
        offset = 0
        for job in jobs:
            chunk = raw[offset:offset + len(job.items)]
            offset += len(job.items)
            out.append([self.handler.finish(r, job.meta) for r in chunk])
        return out

def _as_http_error(exc: Exception, model: str) -> ServeHTTPError:
    """A pipeline exception as the answer to the request that caused it: 422 for bad input, else 500."""
    if isinstance(exc, ServeHTTPError):
        return exc
    if isinstance(exc, InputError):
        return bad_input(f"model {model!r} refused the input: {exc}")
    logger.error("model %r failed on a request: %s", model, exc, exc_info=exc)
    return ServeHTTPError(500, f"model {model!r} failed on this request; see the server log")
