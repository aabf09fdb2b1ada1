"""One worker process seen from the front end: start it, talk to it, watch it.

``WorkerProcess`` is one process and its end of the wire; it tracks the batch it holds so
that when the process exits, exactly that batch is answered 503 (``WorkerDied``), and the
batch's deadline, so that the pool's watchdog can replace a worker stuck in its handler.
Its pool (``podium.backends.local.pool``) decides when to start, restart and stop it.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from podium.backends.local import wire
from podium.errors import InvalidRequest, WorkerDied
from podium.observability.stats import Stats

if TYPE_CHECKING:
    from podium.backends.pending import Pending

log = logging.getLogger("podium.supervisor")


class Pool(Protocol):
    """What a worker reads of its pool, and tells it (``podium.backends.local.pool``'s
    ``WorkerPool``; named here so that the pool imports this module, not the reverse)."""

    label: str
    stats: Stats
    model_dir: Path
    load_timeout: float
    watchdog_grace: float
    debug: bool
    load_traceback_shown: bool
    signature: dict[str, Any] | None

    def worker_environment(self) -> dict[str, str]: ...
    def worker_ready(self, worker: WorkerProcess) -> None: ...
    def worker_lost(self, worker: WorkerProcess) -> None: ...
    def worker_idle(self, worker: WorkerProcess) -> None: ...
    def worker_exited(self, worker: WorkerProcess, expected: bool) -> None: ...


class WorkerState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    DEAD = "dead"


class WorkerProcess(asyncio.Protocol):
    """One worker process, driven through its socket by asyncio callbacks."""

    def __init__(self, pool: Pool, worker_id: int, failures: int = 0) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.failures = failures
        """Failed loads in a row of the workers this one replaces (its restart backoff)."""
        self.deadline = 0.0
        """When the batch in flight is overdue: its last request's deadline plus the
        watchdog's grace, pushed back by each streamed part."""
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
                "podium.backends.local.worker",
                str(child.fileno()),
                str(os.getpid()),
                pass_fds=(child.fileno(),),
                env=self.pool.worker_environment(),
                start_new_session=True,
            )
        finally:
            child.close()
        await loop.connect_accepted_socket(lambda: self, parent)
        # Until a worker loads, only the first one logs a traceback if its load fails: the
        # pool logs one line per failure.
        quiet = self.pool.load_traceback_shown
        self.pool.load_traceback_shown = True
        self._send(wire.Load(str(self.pool.model_dir), self.worker_id, self.pool.debug, quiet))
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), self.pool.load_timeout)
        except TimeoutError:
            self.load_error = f"load timed out after {self.pool.load_timeout:g} s"
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
                self._partial(message)
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
                if message.signature is not None:
                    self.pool.signature = message.signature
                self.pool.worker_ready(self)
            elif isinstance(message, wire.HandlerMetrics):
                self.pool.stats.handler_metrics(self.worker_id, message.values)
            elif isinstance(message, wire.LoadFailed):
                self.load_error = message.message
                self.ready.set_exception(RuntimeError(message.message))

    @property
    def loaded(self) -> bool:
        """The worker loaded its model (it may have exited since)."""
        return self.ready.done() and self.ready.exception() is None

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        self.state = WorkerState.DEAD
        if self.loaded:
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
        if previous is not WorkerState.STOPPING and self.loaded:
            log.warning("%s worker %s exited with status %s", self.pool.label, self.pid, status)
        if self.load_error is None and not self.loaded:
            self.load_error = f"the worker exited with status {status} while loading"
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
            data = wire.encode(wire.Batch(batch_id, [tuple(item.request) for item in batch]))
        except Exception:
            batch = [item for item in batch if _sendable(item)]
            if not batch:
                return False
            data = wire.encode(wire.Batch(batch_id, [tuple(item.request) for item in batch]))
        self.state = WorkerState.BUSY
        self.batch_id = batch_id
        self.in_flight = batch
        self.sent_at = time.monotonic()
        self.deadline = batch[-1].deadline + self.pool.watchdog_grace
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        return True

    def _partial(self, message: wire.Partial) -> None:
        """A part of one streamed answer of the batch in flight (anything else is dropped)."""
        if message.batch_id == self.batch_id and 0 <= message.position < len(self.in_flight):
            item = self.in_flight[message.position]
            item.part(message.response)
            # Each part may take a request's timeout: the batch is alive.
            alive = time.monotonic() + (item.deadline - item.arrival) + self.pool.watchdog_grace
            self.deadline = max(self.deadline, alive)

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
        wire.encode(wire.Batch(0, [tuple(item.request)]))
    except Exception as error:
        if not item.future.done():
            item.future.set_exception(
                InvalidRequest(f"The request cannot be passed to a worker: {error}")
            )
        return False
    return True
