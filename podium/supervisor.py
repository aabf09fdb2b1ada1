"""Worker processes seen from the front end: start, watch, restart, stop.

``WorkerProcess`` is one process and its end of the wire; it tracks the batch it holds so
that when the process exits, exactly that batch is answered 503 (``WorkerDied``).
``WorkerPool`` keeps a model version's workers at their target count, restarting the
ones that exit with exponential backoff, and hands idle workers to the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import sys
import time
import typing
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium import wire
from podium.errors import InvalidRequest, WorkerDied

if TYPE_CHECKING:
    from podium.batcher import Pending
    from podium.metrics import Stats

log = logging.getLogger("podium.supervisor")

RESTART_BASE_DELAY = 0.1
RESTART_MAX_DELAY = 5.0
HEALTHY_UPTIME = 30.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PODIUM_THREADS")


class WorkerState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    DEAD = "dead"


class WorkerProcess(asyncio.Protocol):
    """One worker process, driven through its socket by asyncio callbacks."""

    def __init__(self, pool: WorkerPool, worker_id: int) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.state = WorkerState.STARTING
        self.process: asyncio.subprocess.Process | None = None
        self.transport: asyncio.Transport | None = None
        self.reader = wire.FrameReader()
        self.in_flight: list[Pending] = []
        self.batch_id = 0
        self.sent_at = 0.0
        self.idle_since = 0.0
        self.started_at = time.monotonic()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.load_error: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "podium.worker",
                str(child.fileno()),
                str(os.getpid()),
                pass_fds=(child.fileno(),),
                env=self.pool.worker_environment(),
                start_new_session=True,
            )
        finally:
            child.close()
        await loop.connect_accepted_socket(lambda: self, parent)
        self._send(wire.Load(str(self.pool.model_dir), self.worker_id, self.pool.debug))
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), self.pool.load_timeout)
        except TimeoutError:
            log.error("%s worker %d: load timed out; killing it", self.pool.label, self.pid)
            self.kill()
        except Exception:
            pass  # load failed or the process died; connection_lost handles it

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for message in self.reader.feed(data):
            if isinstance(message, wire.Result):
                self._finish_batch(message)
            elif isinstance(message, wire.Partial):
                if message.batch_id == self.batch_id and 0 <= message.position < len(
                    self.in_flight
                ):
                    self.in_flight[message.position].part(message.response)
            elif isinstance(message, wire.Ready):
                self.state = WorkerState.IDLE
                log.info(
                    "%s: worker %d ready in %.2f s",
                    self.pool.label,
                    message.pid,
                    time.monotonic() - self.started_at,
                )
                self.started_at = time.monotonic()
                self.ready.set_result(None)
                self.pool.worker_ready(self)
            elif isinstance(message, wire.HandlerMetrics):
                self.pool.stats.handler_metrics(self.worker_id, message.values)
            elif isinstance(message, wire.LoadFailed):
                self.load_error = message.message
                log.error("%s worker failed to load: %s", self.pool.label, message.message)
                self.ready.set_exception(RuntimeError(message.message))

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        self.state = WorkerState.DEAD
        if self.ready.done() and not self.ready.exception():
            self.pool.worker_lost(self)
        self.abandon(WorkerDied())
        self.in_flight = []
        if not self.ready.done():
            self.ready.set_exception(WorkerDied())
        self.ready.exception()  # mark retrieved: nobody may be waiting on it any more
        asyncio.get_running_loop().create_task(self._reap(previous))

    def abandon(self, error: Exception) -> None:
        """Answer the requests of the batch in flight with ``error`` (a late result for
        them is dropped: their futures are done)."""
        for item in self.in_flight:
            if item.stream is not None:
                item.stream.end(error)
            elif not item.future.done():
                item.future.set_exception(error)

    async def _reap(self, previous: WorkerState) -> None:
        status = await self.process.wait() if self.process else None
        if previous is not WorkerState.STOPPING:
            log.warning("%s worker %s exited with status %s", self.pool.label, self.pid, status)
        self.exited.set_result(None)
        self.pool.worker_exited(self, expected=previous is WorkerState.STOPPING)

    # the front end's side

    def run(self, batch: list[Pending]) -> bool:
        """Send a batch; its items' futures are resolved when the result comes back.

        A request that cannot cross the wire (``wire.encode`` raises) is answered with the
        error here and left out; returns False, the worker still idle, when none is left.
        """
        batch_id = self.batch_id + 1
        try:
            data = wire.encode(wire.Batch(batch_id, [item.payload for item in batch]))
        except Exception:
            batch = [item for item in batch if _sendable(item)]
            if not batch:
                return False
            data = wire.encode(wire.Batch(batch_id, [item.payload for item in batch]))
        self.state = WorkerState.BUSY
        self.batch_id = batch_id
        self.in_flight = batch
        self.sent_at = time.monotonic()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        return True

    def _partial(self, message: wire.Partial) -> None:
        """A part of one streamed answer of the batch in flight (anything else is dropped)."""
        if message.batch_id == self.batch_id and 0 <= message.position < len(self.in_flight):
            self.in_flight[message.position].part(message.response)

    def _finish_batch(self, result: wire.Result) -> None:
        self.pool.stats.inference.observe(time.monotonic() - self.sent_at)
        for item, response in zip(self.in_flight, result.responses, strict=True):
            if item.stream is not None:
                item.stream.end(response)
            elif not item.future.done():
                item.future.set_result(response)
        self.in_flight = []
        if self.state is WorkerState.BUSY:
            self.state = WorkerState.IDLE
            self.pool.worker_idle(self)

    def _send(self, message: wire.Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wire.encode(message))

    def stop(self) -> None:
        """Ask the worker to exit once its current batch is done."""
        self.state = WorkerState.STOPPING
        self._send(wire.Stop())

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def _sendable(item: Pending) -> bool:
    """Whether a request can cross the wire; if not, it is answered with why."""
    try:
        wire.encode(wire.Batch(0, [item.payload]))
    except Exception as error:
        if not item.future.done():
            item.future.set_exception(
                InvalidRequest(f"The request cannot be passed to a worker: {error}")
            )
        return False
    return True


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
        self.threads = threads
        self.debug = debug
        self.workers: list[WorkerProcess] = []
        self.idle: deque[WorkerProcess] = deque()
        self.on_idle: Callable[[], None] = lambda: None
        self.restarts = 0
        self.ready_count = 0
        """Workers that loaded their model and have not exited (kept, not recounted: the
        batcher reads it on every request)."""
        self._failures = 0
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
        """Start the minimum of workers and wait until each is ready or failed."""
        if self.maximum > self.minimum:
            self._track(self._scale_down_idle())
        await asyncio.gather(*(self._spawn() for _ in range(self.target)))

    @property
    def in_flight(self) -> int:
        """Requests held by workers right now."""
        return sum(len(w.in_flight) for w in self.workers)

    def grow(self) -> None:
        """Add a worker if the pool may and none is already starting (backlog seen)."""
        if self._closing or self.target >= self.maximum:
            return
        if any(w.state is WorkerState.STARTING for w in self.workers):
            return
        self.target += 1
        log.info("%s: backlog, adding worker %d of %d", self.label, self.target, self.maximum)
        self._track(self._spawn())

    async def scale(self, minimum: int, maximum: int) -> None:
        """Change the bounds live; start or stop workers to fit, dropping no request.

        A stopped worker finishes the batch it holds first; idle workers go first.
        Returns once the pool has its new minimum of ready workers (or has given up
        loading them: a failing model keeps restarting in the background).
        """
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.target = min(max(self.target, self.minimum), self.maximum)
        active = [w for w in self.workers if w.state is not WorkerState.STOPPING]
        busy_last = sorted(active, key=lambda w: w.state is not WorkerState.IDLE)
        for worker in busy_last[: max(0, len(active) - self.target)]:
            worker.stop()
        if self.maximum > self.minimum and not self._scaler_running:
            self._track(self._scale_down_idle())
        await asyncio.gather(*(self._spawn() for _ in range(self.target - len(active))))

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

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> None:
        worker = WorkerProcess(self, self._next_id)
        self._next_id += 1
        self.workers.append(worker)
        try:
            await worker.start()
        except OSError as error:
            log.error("%s: cannot start a worker: %s", self.label, error)
            self.workers.remove(worker)
            self._schedule_restart(uptime=0.0)

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
        self.restarts += 1
        self._schedule_restart(uptime=time.monotonic() - worker.started_at)

    def _schedule_restart(self, uptime: float) -> None:
        if self._closing:
            return
        if uptime > HEALTHY_UPTIME:
            self._failures = 0
        delay = min(RESTART_BASE_DELAY * 2**self._failures, RESTART_MAX_DELAY)
        self._failures += 1
        self._track(self._restart_after(delay))

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._closing and len(self.workers) < self.target:
            await self._spawn()

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
