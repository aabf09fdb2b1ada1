"""Prometheus metrics, gathered when scraped.

The request path only bumps plain counters (a dict entry, a bucket index); the
``Collector`` turns them into metric families at scrape time, so monitoring costs the hot
path next to nothing. Every family is labelled by model and version.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from podium.registry import Registry

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


class Collector:
    """Reads the registry's counters into Prometheus metric families."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        requests = CounterMetricFamily(
            "podium_requests", "Answered requests by HTTP status", labels=[*labels, "status"]
        )
        latency = HistogramMetricFamily(
            "podium_request_latency_seconds", "Queue plus inference time", labels=labels
        )
        inference = HistogramMetricFamily(
            "podium_inference_latency_seconds",
            "Time a worker held a message (one handler batch, or several of a backlog)",
            labels=labels,
        )
        batches = HistogramMetricFamily(
            "podium_batch_size", "Requests per batch sent to a worker", labels=labels
        )
        queue = GaugeMetricFamily("podium_queue_depth", "Requests waiting", labels=labels)
        workers = GaugeMetricFamily(
            "podium_workers", "Worker processes by state", labels=[*labels, "state"]
        )
        restarts = CounterMetricFamily(
            "podium_worker_restarts", "Workers restarted after exiting", labels=labels
        )
        custom = GaugeMetricFamily(
            "podium_handler_metric",
            "Custom metrics a handler emits (TorchServe's context.metrics): counters summed "
            "over workers, gauges as last reported",
            labels=[*labels, "name", "dimensions", "unit"],
        )
        dropped = CounterMetricFamily(
            "podium_requests_dropped",
            "Requests dropped in the queue (deadline passed or client gone)",
            labels=labels,
        )
        for version in self.registry.versions():
            key = [version.name, version.version]
            stats = version.stats
            for status, count in sorted(stats.statuses.items()):
                requests.add_metric([*key, str(status)], count)
            for family, histogram in (
                (latency, stats.latency),
                (inference, stats.inference),
                (batches, stats.batch_size),
            ):
                family.add_metric(key, histogram.buckets(), histogram.total)
            queue.add_metric(key, len(version.batcher.queue))
            for state, count in version.pool.states().items():
                workers.add_metric([*key, state], count)
            restarts.add_metric(key, version.pool.restarts)
            dropped.add_metric(key, version.batcher.dropped)
            for (name, dimensions, unit), value in sorted(stats.handler_totals().items()):
                custom.add_metric([*key, name, dimensions, unit], value)
        yield from (requests, latency, inference, batches, queue, workers, restarts, dropped)
        yield custom


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


def exposition(registry: Registry) -> bytes:
    """The Prometheus text format of every metric."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(Collector(registry))
    return generate_latest(collectors)
