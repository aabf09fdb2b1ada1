"""The worker processes of one model version: how many, restarts, the watchdog, failure.

``WorkerPool`` keeps a version's workers at their target count and hands idle ones to the
batcher. What it does when a worker ends:

- A worker that loaded its model and then exited (a crash, a kill, the watchdog) is
  replaced at once (after ``RESTART_BASE_DELAY``). Its requests were answered 503 already;
  the other workers keep serving, and new requests queue for the replacement.
- A worker that failed to load is replaced after a backoff of its own (doubling per failed
  load of that worker slot, up to ``RESTART_MAX_DELAY``), so one slot's crash loop never
  delays another's restart.
- After ``max_load_failures`` failed loads in a row with no worker serving, the version is
  *failed*: it stops retrying, its requests get 503 ``ModelFailed`` naming the last error,
  and health checks list it. Registering it again or scaling it starts afresh.

The watchdog: a worker whose batch runs past its requests' deadline plus
``watchdog_grace`` is stuck (its requests got their 504 already). It is killed and
replaced; its late answer, if any, is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.backends.local.supervisor import WorkerProcess, WorkerState

if TYPE_CHECKING:
    from podium.observability.stats import Stats

log = logging.getLogger("podium.supervisor")

RESTART_BASE_DELAY = 0.1
RESTART_MAX_DELAY = 5.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PODIUM_THREADS")


class WorkerPool:
    """The worker processes of one model version, between ``minimum`` and ``maximum``.

    It starts ``minimum`` workers. When the batcher reports a backlog and every worker is
    busy, it adds one (one start at a time) up to ``maximum``; a worker idle for
    ``scale_down_after`` seconds is stopped while there are more than ``minimum``.
    """

    def __init__(
        self,
        label: str,
        model_dir: Path,
        *,
        minimum: int,
        maximum: int,
        load_timeout: float,
        threads: int,
        stats: Stats,
        scale_down_after: float = 60.0,
        watchdog_grace: float = 5.0,
        max_load_failures: int = 5,
        debug: bool = False,
    ) -> None:
        self.label = label
        self.stats = stats
        self.model_dir = model_dir
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.target = minimum
        self.scale_down_after = scale_down_after
        self.load_timeout = load_timeout
        self.watchdog_grace = watchdog_grace
        self.max_load_failures = max_load_failures
        self.threads = threads
        self.debug = debug
        self.workers: list[WorkerProcess] = []
        self.idle: deque[WorkerProcess] = deque()
        self.on_idle: Callable[[], None] = lambda: None
        self.on_failed: Callable[[str], None] = lambda reason: None
        self.restarts = 0
        self.ready_count = 0
        """Workers that loaded their model and have not exited (kept, not recounted: the
        batcher reads it on every request)."""
        self.load_failures = 0
        """Failed loads in a row, over all workers (a loaded worker resets it)."""
        self.failed: str | None = None
        """Why the version gave up loading (None while it is not failed)."""
        self.ever_ready = False
        self.signature: dict[str, Any] | None = None
        """The model's inputs and outputs, as its first ready worker described them."""
        self.load_traceback_shown = False
        """A worker was told to log its traceback if its load fails (reset by a load)."""
        self._changed = asyncio.Event()
        self._next_id = 0
        self._closing = False
        self._scaler_running = False
        self._tasks: set[asyncio.Task[None]] = set()

    def worker_environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        for name in THREAD_VARIABLES:
            environment.setdefault(name, str(self.threads))
        if self.debug:
            environment["PODIUM_WORKER_LOG_LEVEL"] = "DEBUG"
        return environment

    async def start(self) -> None:
        """Start the minimum of workers; return once they are ready or the version failed."""
        self._track(self._watch())
        if self.maximum > self.minimum:
            self._track(self._scale_down_idle())
        for _ in range(self.target):
            self._track(self._spawn())
        await self.settled()

    async def settled(self) -> None:
        """Wait until the target of workers is ready, or loading stopped succeeding (the
        version failed, or failed loads ran out of budget while some workers serve)."""
        while not (
            self.failed is not None
            or self.ready_count >= self.target
            or (self.ready_count > 0 and self.load_failures >= self.max_load_failures)
        ):
            self._changed.clear()
            await self._changed.wait()

    @property
    def recovering(self) -> bool:
        """No worker is ready, but one will be soon: a worker that served exited and its
        replacement is on its way (requests may queue for it instead of failing)."""
        return self.ever_ready and self.failed is None and not self._closing and self.target > 0

    @property
    def in_flight(self) -> int:
        """Requests held by workers right now."""
        return sum(len(w.in_flight) for w in self.workers)

    def grow(self) -> None:
        """Add a worker if the pool may and none is already starting (backlog seen)."""
        if self._closing or self.failed is not None or self.target >= self.maximum:
            return
        if any(w.state is WorkerState.STARTING for w in self.workers):
            return
        self.target += 1
        log.info("%s: backlog, adding worker %d of %d", self.label, self.target, self.maximum)
        self._track(self._spawn())

    async def scale(self, minimum: int, maximum: int) -> None:
        """Change the bounds live; start or stop workers to fit, dropping no request.

        A stopped worker finishes the batch it holds first; idle workers go first. A failed
        version gets a fresh budget of loads. Returns once the pool has settled.
        """
        if self.failed is not None:
            self.failed = None
            self.load_failures = 0
            self.load_traceback_shown = False
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.target = min(max(self.target, self.minimum), self.maximum)
        active = [w for w in self.workers if w.state is not WorkerState.STOPPING]
        busy_last = sorted(active, key=lambda w: w.state is not WorkerState.IDLE)
        for worker in busy_last[: max(0, len(active) - self.target)]:
            worker.stop()
        if self.maximum > self.minimum and not self._scaler_running:
            self._track(self._scale_down_idle())
        for _ in range(self.target - len(active)):
            self._track(self._spawn())
        await self.settled()

    async def _scale_down_idle(self) -> None:
        self._scaler_running = True
        while True:
            await asyncio.sleep(max(0.1, self.scale_down_after / 4))
            now = time.monotonic()
            for worker in list(self.workers):
                if self.target <= self.minimum:
                    break
                if (
                    worker.state is WorkerState.IDLE
                    and now - worker.idle_since > self.scale_down_after
                ):
                    self.target -= 1
                    log.info("%s: worker %s idle, stopping it", self.label, worker.pid)
                    worker.stop()

    async def _watch(self) -> None:
        """The watchdog: kill workers whose batch is overdue (they are replaced)."""
        while True:
            await asyncio.sleep(min(1.0, self.watchdog_grace / 2))
            now = time.monotonic()
            for worker in self.workers:
                if worker.state is WorkerState.BUSY and now > worker.deadline:
                    log.warning(
                        "%s: worker %s is stuck in its handler %.1f s past its requests' "
                        "deadline; replacing it",
                        self.label,
                        worker.pid,
                        now - worker.deadline + self.watchdog_grace,
                    )
                    worker.state = WorkerState.STOPPING  # no new batch; restarted below
                    worker.kill()
                    self.restarts += 1
                    self._track(self._restart_after(RESTART_BASE_DELAY, 0))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, failures: int = 0) -> None:
        worker = WorkerProcess(self, self._next_id, failures)
        self._next_id += 1
        self.workers.append(worker)
        try:
            await worker.start()
        except OSError as error:
            self.workers.remove(worker)
            worker.load_error = f"cannot start a worker: {error}"
            self._load_failed(worker)

    def states(self) -> dict[str, int]:
        """How many workers are in each state (every state listed)."""
        counts = {state.value: 0 for state in WorkerState}
        for worker in self.workers:
            counts[worker.state.value] += 1
        return counts

    def take_idle(self) -> WorkerProcess | None:
        while self.idle:
            worker = self.idle.popleft()
            if worker.state is WorkerState.IDLE:
                return worker
        return None

    def worker_ready(self, worker: WorkerProcess) -> None:
        self.ready_count += 1
        self.load_failures = 0
        self.load_traceback_shown = False
        self.ever_ready = True
        self._changed.set()
        self.worker_idle(worker)

    def worker_lost(self, worker: WorkerProcess) -> None:
        """A ready worker's connection closed: it no longer counts, even before it is reaped."""
        self.ready_count -= 1

    def worker_idle(self, worker: WorkerProcess) -> None:
        worker.idle_since = time.monotonic()
        self.idle.append(worker)
        self.on_idle()

    def worker_exited(self, worker: WorkerProcess, expected: bool) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if self._closing or expected:
            return
        if not worker.loaded:
            self._load_failed(worker)
            return
        # It loaded, so the model is fine: replace it at once (a request that crashes it
        # costs a load each time, bounded by how often such requests come).
        self.restarts += 1
        self._track(self._restart_after(RESTART_BASE_DELAY, 0))

    def _load_failed(self, worker: WorkerProcess) -> None:
        """One failed load: retry that slot after its own backoff, or give up."""
        self.load_failures += 1
        reason = worker.load_error or "the worker failed to load"
        log.error(
            "%s: load failed (%d in a row, budget %d): %s",
            self.label,
            self.load_failures,
            self.max_load_failures,
            reason,
        )
        self._changed.set()
        if self._closing or self.failed is not None:
            return
        if self.load_failures >= self.max_load_failures and self.ready_count == 0:
            self.failed = reason
            log.error(
                "%s: failed %d loads in a row; not retrying until it is registered again or "
                "scaled: %s",
                self.label,
                self.load_failures,
                reason,
            )
            self.on_failed(reason)
            return
        failures = worker.failures + 1
        delay = min(RESTART_BASE_DELAY * 2 ** (failures - 1), RESTART_MAX_DELAY)
        self._track(self._restart_after(delay, failures))

    async def _restart_after(self, delay: float, failures: int) -> None:
        await asyncio.sleep(delay)
        active = [w for w in self.workers if w.state is not WorkerState.STOPPING]
        if not self._closing and self.failed is None and len(active) < self.target:
            await self._spawn(failures)

    def abandon(self, error: Exception) -> None:
        """Answer every request the workers hold with ``error``."""
        for worker in self.workers:
            worker.abandon(error)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let each worker finish its batch and exit; kill those that do not in time."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        workers = list(self.workers)
        for worker in workers:
            worker.stop()
        if not workers:
            return
        _, late = await asyncio.wait([w.exited for w in workers], timeout=timeout)
        for worker in workers:
            if not worker.exited.done():
                worker.kill()
        if late:
            await asyncio.wait(late, timeout=5)
