"""What the request path counts for each model version: plain counters and histograms,
cheap to bump (a dict entry, a bucket index). ``prometheus`` reads them at scrape time."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """Counts per bucket, and the sum; cheap to observe."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, ending with ``+Inf``."""
        running = 0
        pairs: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return pairs


HandlerValue = tuple[str, str, str, float, bool]


class Stats:
    """What the request path counts for one model version."""

    __slots__ = ("batch_size", "handler_values", "inference", "latency", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BOUNDS)
        self.inference = Histogram(LATENCY_BOUNDS)
        self.batch_size = Histogram(BATCH_BOUNDS)
        self.handler_values: dict[int, list[HandlerValue]] = {}

    def handler_metrics(self, worker_id: int, values: list[HandlerValue]) -> None:
        """A worker's latest snapshot of its handler's custom metrics."""
        self.handler_values.pop(worker_id, None)  # re-insert: the newest snapshot last
        self.handler_values[worker_id] = values

    def handler_totals(self) -> dict[tuple[str, str, str], float]:
        """Counters summed over the workers; gauges as the last worker reported them."""
        totals: dict[tuple[str, str, str], float] = {}
        for values in self.handler_values.values():
            for name, dimensions, unit, value, counter in values:
                key = (name, dimensions, unit)
                totals[key] = totals.get(key, 0.0) + value if counter else value
        return totals

    def answered(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
