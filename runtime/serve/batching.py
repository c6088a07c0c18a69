"""Dynamic micro-batching: coalesce concurrent requests for one model into one model call.

One :class:`MicroBatcher` per served model.  Requests wait in a bounded queue; a single worker task
takes the oldest one, keeps adding queued requests until the batch holds ``max_batch_size`` inputs or
``max_batch_tokens`` tokens, or ``max_wait`` has passed since the oldest arrived, then hands the batch to a
dedicated worker thread
(ONNX Runtime releases the GIL, so the event loop keeps accepting requests meanwhile).  While a batch
runs, new requests queue up and form the next batch, so under load batches grow without any waiting.

Requests costing more than ``large_cost`` tokens (long QA contexts, many inputs) wait in a lane of their
own and run one per batch.  When both lanes hold requests the worker takes them in turn, so a small request
waits behind at most one large request, never behind a queue of them, and large requests are never starved.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

logger = logging.getLogger(__name__)


class QueueFullError(Exception):
    """The model's queue already holds ``max_queue`` waiting requests."""


class BatcherClosedError(Exception):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class Job:
    """One request's share of a batch.

    ``items`` are its inputs (the batch limit counts them); ``params`` are the request's call options,
    and ``key`` groups jobs whose options allow them to share one model call.
    """

    items: list[Any]
    params: dict[str, Any] = field(default_factory=dict)
    cost: int = 0  # tokens, counted before queueing (QA: every window); the batch token budget adds these up
    key: Hashable = ()
    meta: dict[str, Any] = field(default_factory=dict)  # how to shape the answer; never passed to the model
    prepared: Any = None  # the inputs as the task checked and tokenized them on arrival; what the model call runs
    enqueued: float = field(default_factory=time.monotonic)
    future: "asyncio.Future[Any] | None" = None

    @property
    def size(self) -> int:
        return max(1, len(self.items))


#: runs a batch in the worker thread; returns one result or exception per job, in order
BatchRunner = Callable[[Sequence[Job]], Sequence[Any]]


class MicroBatcher:
    """Queue + batch-forming worker for one model."""

    def __init__(self, name: str, run_batch: BatchRunner, *, max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256, on_queue_depth: Callable[[int], None] | None = None,
                 max_batch_tokens: int | None = None, large_cost: int | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.large_cost = large_cost
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._run_batch = run_batch
        self._on_queue_depth = on_queue_depth or (lambda depth: None)
        self._pending: collections.deque[Job] = collections.deque()
        self._large: collections.deque[Job] = collections.deque()
        self._last_was_large = False
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._running: list[Job] = []
        # one thread per model: batches for a model run one at a time, which is what lets the next batch grow
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"distilrt-{name}")

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return len(self._pending) + len(self._large)

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its result; raises what the batch runner returned for it."""
        if self._closing or self._task is None:
            raise BatcherClosedError(f"model {self.name!r} is not accepting requests")
        if self.depth >= self.max_queue:
            raise QueueFullError(f"model {self.name!r} has {self.depth} requests waiting (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.enqueued = time.monotonic()
        large = self.large_cost is not None and job.cost > self.large_cost
        (self._large if large else self._pending).append(job)
        self._report_depth()
        assert self._wakeup is not None
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Stop taking requests, finish everything already queued, then stop the worker."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def expire(self, error: Callable[[], BaseException]) -> int:
        """Answer every waiting and running request with ``error()`` and take no more (shutdown deadline).

        Waiting requests are dropped without running; a batch already in the model finishes in its thread,
        but its results are discarded.  Returns how many requests were answered this way.
        """
        self._closing = True
        answered = 0
        for job in [*self._running, *self._pending, *self._large]:
            if job.future is not None and not job.future.done():
                job.future.set_exception(error())
                answered += 1
        self._pending.clear()
        self._large.clear()
        self._report_depth()
        if self._wakeup is not None:
            self._wakeup.set()
        return answered

    def _report_depth(self) -> None:
        self._on_queue_depth(self.depth)

    def _take_live(self) -> tuple[Job, collections.deque[Job]] | None:
        """Pop the oldest live job of the lane whose turn it is (a disconnected client cancels its future).

        The lanes take turns when both hold requests; otherwise whichever holds one goes.
        """
        for lane in self._lane_order():
            while lane:
                job = lane.popleft()
                if job.future is not None and not job.future.done():
                    self._last_was_large = lane is self._large
                    return job, lane
        return None

    def _lane_order(self) -> tuple[collections.deque[Job], collections.deque[Job]]:
        return (self._pending, self._large) if self._last_was_large else (self._large, self._pending)

    async def _collect(self) -> list[Job] | None:
        """Wait for the first job, then gather more from its lane until the batch is full or the wait is over."""
        assert self._wakeup is not None
        taken = self._take_live()
        while taken is None:
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
            taken = self._take_live()
        first, lane = taken
        batch, size, tokens = [first], first.size, first.cost
        deadline = first.enqueued + self.max_wait
        # a large request runs alone: its windows or inputs already fill a batch, and the small requests
        # waiting in the other lane are held back by one large request, not by several
        while size < self.max_batch_size and lane is not self._large:
            if lane:
                nxt = lane[0]
                if nxt.future is None or nxt.future.done():
                    lane.popleft()
                    continue
                if size + nxt.size > self.max_batch_size:
                    break
                if self.max_batch_tokens is not None and tokens + nxt.cost > self.max_batch_tokens:
                    break
                batch.append(lane.popleft())
                size += nxt.size
                tokens += nxt.cost
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        self._report_depth()
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if batch is None:
                return
            self._running = batch
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
                if len(results) != len(batch):
                    raise RuntimeError(f"batch runner returned {len(results)} results for {len(batch)} jobs")
            except Exception as exc:  # the runner failed as a whole; every caller hears about it
                logger.exception("batch of %d requests for model %r failed", len(batch), self.name)
                results = [exc] * len(batch)
            self._running = []
            for job, result in zip(batch, results):
                if job.future is None or job.future.done():
                    continue  # caller went away
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
