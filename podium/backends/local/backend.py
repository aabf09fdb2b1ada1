"""The local backend: a ``Batcher`` in front of a ``WorkerPool`` of processes on this
machine, behind the ``Backend`` interface."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from podium.backends.base import Backend, BackendStatus, WorkerStatus
from podium.backends.local.batcher import Batcher
from podium.backends.local.pool import WorkerPool
from podium.backends.pending import Pending
from podium.errors import PodiumError
from podium.observability.stats import Stats
from podium.types import InferenceRequest


class LocalBackend(Backend):
    """One version's batcher and worker pool."""

    def __init__(self, pool: WorkerPool, batcher: Batcher) -> None:
        self.pool = pool
        self.batcher = batcher
        self.request_timeout = batcher.request_timeout
        # The hot calls go straight to the batcher: no delegating call per request.
        self.admit = batcher.admit  # type: ignore[method-assign]
        self.submit = batcher.submit  # type: ignore[method-assign]
        self.reserve = batcher.reserve  # type: ignore[method-assign]

    @classmethod
    def create(
        cls,
        label: str,
        model_dir: Path,
        *,
        stats: Stats,
        minimum: int,
        maximum: int,
        batch_size: int,
        max_batch_delay: float,
        batching: Literal["adaptive", "fixed"],
        max_queue: int,
        request_timeout: float,
        load_timeout: float,
        scale_down_after: float,
        watchdog_grace: float,
        max_load_failures: int,
        debug: bool,
    ) -> LocalBackend:
        """A backend for the model unpacked in ``model_dir`` (not started yet)."""
        pool = WorkerPool(
            label,
            model_dir,
            stats=stats,
            minimum=minimum,
            maximum=maximum,
            scale_down_after=scale_down_after,
            watchdog_grace=watchdog_grace,
            max_load_failures=max_load_failures,
            load_timeout=load_timeout,
            # Each worker's library threads get its share of the cores.
            threads=max(1, _cores() // max(minimum, maximum)),
            debug=debug,
        )
        batcher = Batcher(
            pool,
            batch_size=batch_size,
            max_batch_delay=max_batch_delay,
            policy=batching,
            max_queue=max_queue,
            request_timeout=request_timeout,
            stats=stats,
        )
        return cls(pool, batcher)

    async def start(self) -> None:
        await self.pool.start()

    def admit(self) -> None:
        self.batcher.admit()

    def submit(self, request: InferenceRequest) -> Pending:
        return self.batcher.submit(request)

    @property
    def room(self) -> int:
        return self.batcher.room

    def reserve(self) -> None:
        self.batcher.reserve()

    def hold(self, resume: Callable[[], None]) -> None:
        self.batcher.hold(resume)

    async def scale(self, minimum: int, maximum: int) -> None:
        await self.pool.scale(minimum, maximum)

    @property
    def ready(self) -> bool:
        return self.pool.ready_count >= max(1, self.pool.minimum)

    @property
    def failed(self) -> str | None:
        return self.pool.failed

    @property
    def signature(self) -> dict[str, Any] | None:
        return self.pool.signature

    @property
    def busy(self) -> bool:
        return bool(self.batcher.queue or self.pool.in_flight)

    def status(self) -> BackendStatus:
        pool, batcher = self.pool, self.batcher
        return BackendStatus(
            ready_workers=pool.ready_count,
            failed=pool.failed,
            restarts=pool.restarts,
            queue_depth=len(batcher.queue),
            in_flight=pool.in_flight,
            dropped=batcher.dropped,
            minimum=pool.minimum,
            maximum=pool.maximum,
            batch_size=batcher.batch_size,
            batching=batcher.policy,
            states=pool.states(),
            workers=tuple(WorkerStatus(w.worker_id, w.pid, w.state.value) for w in pool.workers),
        )

    def failure(self, reason: str) -> PodiumError:
        return self.batcher.failure(reason)

    def abandon(self, error: PodiumError) -> None:
        self.batcher.abandon(error)
        self.pool.abandon(error)

    async def stop(self, timeout: float = 10.0) -> None:
        await self.pool.stop(timeout)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
