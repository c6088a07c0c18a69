"""Dynamic micro-batching: coalesce concurrent requests for one model into one model call.

One :class:`MicroBatcher` per served model.  Requests wait in a bounded queue; a single worker task
takes the oldest one, keeps adding queued requests until the batch holds ``max_batch_size`` inputs or
``max_wait`` has passed since the oldest arrived, then hands the batch to a dedicated worker thread
(ONNX Runtime releases the GIL, so the event loop keeps accepting requests meanwhile).  While a batch
runs, new requests queue up and form the next batch, so under load batches grow without any waiting.
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
    key: Hashable = ()
    meta: dict[str, Any] = field(default_factory=dict)  # how to shape the answer; never passed to the model
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
                 max_queue: int = 256, on_queue_depth: Callable[[int], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._run_batch = run_batch
        self._on_queue_depth = on_queue_depth or (lambda depth: None)
        self._pending: collections.deque[Job] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # one thread per model: batches for a model run one at a time, which is what lets the next batch grow
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"distilrt-{name}")

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return len(self._pending)

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its result; raises what the batch runner returned for it."""
        if self._closing or self._task is None:
            raise BatcherClosedError(f"model {self.name!r} is not accepting requests")
        if len(self._pending) >= self.max_queue:
            raise QueueFullError(f"model {self.name!r} has {len(self._pending)} requests waiting (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.enqueued = time.monotonic()
        self._pending.append(job)
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

    def _report_depth(self) -> None:
        self._on_queue_depth(len(self._pending))

    def _take_live(self) -> Job | None:
        """Pop the oldest job whose caller is still waiting (a disconnected client cancels its future)."""
        while self._pending:
            job = self._pending.popleft()
            if job.future is not None and not job.future.done():
                return job
        return None

    async def _collect(self) -> list[Job] | None:
        """Wait for the first job, then gather more until the batch is full or the wait is over."""
        assert self._wakeup is not None
        first = self._take_live()
        while first is None:
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
            first = self._take_live()
        batch, size = [first], first.size
        deadline = first.enqueued + self.max_wait
        while size < self.max_batch_size:
            if self._pending:
                nxt = self._pending[0]
                if nxt.future is None or nxt.future.done():
                    self._pending.popleft()
                    continue
                if size + nxt.size > self.max_batch_size:
                    break
                batch.append(self._pending.popleft())
                size += nxt.size
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
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
                if len(results) != len(batch):
                    raise RuntimeError(f"batch runner returned {len(results)} results for {len(batch)} jobs")
            except Exception as exc:  # the runner failed as a whole; every caller hears about it
                logger.exception("batch of %d requests for model %r failed", len(batch), self.name)
                results = [exc] * len(batch)
            for job, result in zip(batch, results):
                if job.future is None or job.future.done():
                    continue  # caller went away
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
