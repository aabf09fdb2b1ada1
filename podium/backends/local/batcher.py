"""Dynamic batching for one model version: a bounded queue in front of a worker pool.

Two policies:

- ``adaptive`` (default): a batch leaves as soon as a worker is idle, holding whatever is
  queued (up to ``batch_size``). At low load a request never waits for company; under
  load, requests pile up while every worker is busy, so batches grow by themselves.
- ``fixed``: wait up to ``max_batch_delay`` after the first queued request for a full
  batch, then dispatch (TorchServe's rule).

In both, dispatch is deferred to the next turn of the event loop, so requests read in the
same turn share a batch. Requests whose deadline passed, or whose client went away, are
dropped here and never reach a worker.

What crosses the wire is not limited to one handler batch: with a small ``batch_size``
(TorchServe's default is 1) and a backlog, up to ``WIRE_REQUESTS`` requests travel in one
message, and the worker cuts them into handler batches of ``batch_size``. The handler sees
exactly the batches it was promised; the front end pays for one message instead of many.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from podium.backends.local.pool import WorkerPool
from podium.backends.pending import Pending
from podium.errors import ModelFailed, ModelNotReady, QueueFull, RequestTimeout
from podium.observability.stats import Stats
from podium.types import InferenceRequest

WIRE_REQUESTS = 16
"""Most requests sent to a worker in one message when ``batch_size`` is smaller."""


class Batcher:
    """Groups one version's requests into batches and hands them to idle workers."""

    def __init__(
        self,
        pool: WorkerPool,
        *,
        batch_size: int,
        max_batch_delay: float,
        policy: Literal["adaptive", "fixed"],
        max_queue: int,
        request_timeout: float,
        stats: Stats,
    ) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.max_batch_delay = max_batch_delay / 1000.0
        self.policy = policy
        self.max_queue = max_queue
        self.request_timeout = request_timeout
        self.queue: deque[Pending] = deque()
        self.stats = stats
        self.dropped = 0
        self.reserved = 0
        """Places held for requests on their way (``reserve``)."""
        self.held: deque[tuple[float, Callable[[], None]]] = deque()
        """Refused connections waiting for room, oldest first, with when their timer
        resumes them anyway (``hold``)."""
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        pool.on_idle = self._schedule
        pool.on_failed = self._failed

    def submit(self, request: InferenceRequest) -> Pending:
        """Queue one request; raise at once if the queue is full or nothing can serve it."""
        self.admit()
        item = Pending(request, self._loop.create_future(), self.request_timeout)
        self.queue.append(item)
        if len(self.queue) >= self.batch_size and self.pool.idle:
            # A full batch and a worker for it: nothing to wait for, and under a burst the
            # queue makes room for the next requests read in this turn.
            self.dispatch()
        else:
            self._schedule()
        return item

    def admit(self) -> None:
        """Raise now if a request would be refused: routes ask before reading and parsing
        a body, so that under overload a refusal costs as little as possible."""
        if len(self.queue) >= self.max_queue:
            raise QueueFull()
        if self.pool.ready_count == 0:
            if self.pool.failed is not None:
                raise self.failure(self.pool.failed)
            if not self.pool.recovering:
                raise ModelNotReady()
            # A worker that served exited and its replacement is loading: wait for it.

    @property
    def room(self) -> int:
        """Requests that could be taken now: free places in the queue (less those held for
        requests on their way), plus a batch per idle worker (they would not wait)."""
        idle = len(self.pool.idle) * self.batch_size
        return self.max_queue - len(self.queue) - self.reserved + idle

    def reserve(self) -> None:
        """Hold a place in the queue for a request on its way (its head was read); every
        reservation lapses at the loop's next turn, when such requests have been
        submitted (see ``podium.frontends.rest.admission``)."""
        if not self.reserved:
            self._loop.call_soon(self._lapse)
        self.reserved += 1

    def _lapse(self) -> None:
        self.reserved = 0

    def hold(self, resume: Callable[[], None]) -> None:
        """Keep a refused connection unread until the version has idle capacity (``resume``
        is called then, oldest first) or ``Retry-After`` has passed."""
        now = self._loop.time()
        held = self.held
        while held and held[0][0] <= now:  # resumed by their timers already
            held.popleft()
        held.append((now + QueueFull.retry_after, resume))
        self._loop.call_later(QueueFull.retry_after, resume)

    def _release_held(self) -> None:
        room = self.room
        held = self.held
        while held and room > 0:
            held.popleft()[1]()
            room -= 1

    def failure(self, reason: str) -> ModelFailed:
        return ModelFailed(f"{self.pool.label} failed to load: {reason}")

    def _failed(self, reason: str) -> None:
        self.abandon(self.failure(reason))

    def abandon(self, error: Exception) -> None:
        """Answer every queued request with ``error`` (the server is going away)."""
        while self.queue:
            item = self.queue.popleft()
            if not item.future.done():
                item.future.set_exception(error)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.dispatch)

    def dispatch(self) -> None:
        """Send batches to idle workers while there is work; the loop calls this. Then
        resume as many refused connections as the queue has room for."""
        self._dispatch()
        if self.held and self.pool.idle and not self.queue:
            self._release_held()

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        self._drop_stale(now)
        if self.policy == "fixed" and self.queue and len(self.queue) < self.batch_size:
            flush_at = self.queue[0].arrival + self.max_batch_delay
            if now < flush_at:
                self._timer = self._loop.call_at(flush_at, self.dispatch)
                return
        while self.queue:
            worker = self.pool.take_idle()
            if worker is None:
                if len(self.queue) >= self.batch_size:
                    self.pool.grow()
                return
            batch = self._take(now, self._wire_limit())
            if not batch:
                self.pool.idle.appendleft(worker)
                return
            if not worker.run(batch):
                self.pool.idle.appendleft(worker)
                continue
            for start in range(0, len(batch), self.batch_size):
                self.stats.batch_size.observe(min(self.batch_size, len(batch) - start))

    def _wire_limit(self) -> int:
        """Requests for the worker just taken: one handler batch, or with a small batch size
        a share of the backlog (split with the other idle workers) of several."""
        if self.batch_size >= WIRE_REQUESTS:
            return self.batch_size
        share = -(-len(self.queue) // (len(self.pool.idle) + 1))
        return max(self.batch_size, min(WIRE_REQUESTS, share))

    def _take(self, now: float, limit: int) -> list[Pending]:
        batch: list[Pending] = []
        queue = self.queue
        while queue and len(batch) < limit:
            item = queue.popleft()
            if item.future.done():
                self.dropped += 1
            elif item.deadline <= now:
                self.dropped += 1
                item.future.set_exception(RequestTimeout())
            else:
                batch.append(item)
        return batch

    def _drop_stale(self, now: float) -> None:
        """Drop answered (timed out, disconnected) requests from the head of the queue."""
        queue = self.queue
        while queue and (queue[0].future.done() or queue[0].deadline <= now):
            item = queue.popleft()
            self.dropped += 1
            if not item.future.done():
                item.future.set_exception(RequestTimeout())
