"""What the data plane reports after each request, for whoever watches: one hook.

``Observer.observe(Observation)`` is called once per request that reached a model version:
when its answer is known (a streamed answer: when the stream ends, with the status it
ended with), or when it is refused before it is queued. The metrics' counters are one
observer (``CountingObserver``, always there); a prediction log or a drift monitor attaches
beside it with ``DataPlane.observers.append``, without touching the request path.

Observers run on the event loop, inside the request's path: they must be quick (hand slow
work to a queue of their own). One that raises is logged and the request goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from podium.types import InferenceRequest

if TYPE_CHECKING:
    from podium.core.registry import ModelVersion


class Observation(NamedTuple):
    """One request's outcome."""

    served: ModelVersion
    status: int
    """The HTTP status it was answered with (a stream: the status it ended with)."""
    latency: float | None
    """Seconds from arrival to the answer (a stream: to its first part); None when it
    was refused or failed before an answer came from a worker."""
    request: InferenceRequest | None
    """The request, tagged with its protocol (None when it was refused before being read)."""
    body: bytes | None
    """The answer's body as sent (None for errors and streams)."""


class Observer(Protocol):
    """Anything with an ``observe`` method."""

    def observe(self, observation: Observation) -> None: ...


class CountingObserver:
    """Bumps the version's counters that ``/metrics`` exports."""

    def observe(self, observation: Observation) -> None:
        stats = observation.served.stats
        stats.answered(observation.status)
        if observation.latency is not None:
            stats.latency.observe(observation.latency)
