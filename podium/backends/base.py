"""What the data plane and the registry need of a backend: the seam between "which version
serves this request" and "where its batches run".

``podium.backends.local`` implements it with a batcher in front of worker processes on this
machine; a remote backend (Ray Serve) implements the same methods, and the data plane,
the registry and the front ends do not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podium.backends.pending import Pending
from podium.errors import PodiumError
from podium.types import InferenceRequest


@dataclass(frozen=True)
class WorkerStatus:
    """One worker (a process, a replica) as the management API describes it."""

    worker_id: int
    pid: int | None
    state: str


@dataclass(frozen=True)
class BackendStatus:
    """A backend's state at one moment: for describe, ``/metrics`` and health."""

    ready_workers: int
    failed: str | None
    """Why the version gave up loading (None unless it did)."""
    restarts: int
    queue_depth: int
    in_flight: int
    dropped: int
    """Requests dropped before reaching a worker (deadline passed, client gone)."""
    minimum: int
    maximum: int
    batch_size: int
    batching: str
    states: dict[str, int] = field(default_factory=dict)
    """Workers by state."""
    workers: tuple[WorkerStatus, ...] = ()


class Backend(ABC):
    """Runs one model version's requests."""

    request_timeout: float
    """Seconds a request may take from arrival to answer (its deadline)."""

    @abstractmethod
    async def start(self) -> None:
        """Start serving; return once ready, or once loading failed for good (``status``)."""

    @abstractmethod
    def admit(self) -> None:
        """Raise the ``PodiumError`` a request would get now (queue full, not ready,
        failed), before its body is read."""

    @abstractmethod
    def submit(self, request: InferenceRequest) -> Pending:
        """Queue one request; its ``Pending`` resolves with the answer (or a ``Stream``)."""

    @property
    @abstractmethod
    def room(self) -> int:
        """Requests that could be taken now without waiting behind others."""

    @abstractmethod
    def reserve(self) -> None:
        """Hold a place for a request whose head was read, until the loop's next turn."""

    @abstractmethod
    def hold(self, resume: Callable[[], None]) -> None:
        """Call ``resume`` once there is room again (or ``Retry-After`` has passed)."""

    @abstractmethod
    async def scale(self, minimum: int, maximum: int) -> None:
        """Set the bounds of workers; return once the new minimum is ready (or failed)."""

    @abstractmethod
    def status(self) -> BackendStatus:
        """What it is doing now."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """At least its minimum of workers (and at least one) is ready."""

    @property
    @abstractmethod
    def failed(self) -> str | None:
        """Why loading failed for good, or None."""

    @property
    @abstractmethod
    def signature(self) -> dict[str, Any] | None:
        """The model's inputs and outputs once a worker described them (the manifest's
        ``signature`` format), else None."""

    @property
    @abstractmethod
    def busy(self) -> bool:
        """Requests are queued or running (a drain waits for this to turn False)."""

    @abstractmethod
    def failure(self, reason: str) -> PodiumError:
        """The error a request gets from a version that failed to load for ``reason``."""

    @abstractmethod
    def abandon(self, error: PodiumError) -> None:
        """Answer every queued and running request with ``error`` (shutting down)."""

    @abstractmethod
    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker (those still busy after ``timeout`` are killed)."""
