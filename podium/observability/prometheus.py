"""Prometheus metrics, gathered when scraped.

The request path only bumps plain counters (``stats``); the ``Collector`` turns them into
metric families at scrape time, so monitoring costs the hot path next to nothing. Every
family is labelled by model and version. What it reads of each version comes as a
``Sample`` (the registry builds them), so this module knows nothing of the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from podium.observability.stats import Stats

STATUSES = ("ready", "loading", "failed")


class Sample(NamedTuple):
    """One version's counters and gauges, as a scrape reads them."""

    name: str
    version: str
    stats: Stats
    queue_depth: int
    workers: dict[str, int]
    """Worker processes by state."""
    restarts: int
    dropped: int
    status: str
    """``ready``, ``loading`` or ``failed`` (its loads failed past the budget)."""


class Collector:
    """Reads each version's counters into Prometheus metric families."""

    def __init__(
        self, samples: Iterable[Sample], prediction_log_dropped: int | None = None
    ) -> None:
        self.samples = samples
        self.prediction_log_dropped = prediction_log_dropped

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
        model_status = GaugeMetricFamily(
            "podium_model_status",
            "1 for the version's status (ready, loading, failed), 0 for the others",
            labels=[*labels, "status"],
        )
        dropped = CounterMetricFamily(
            "podium_requests_dropped",
            "Requests dropped in the queue (deadline passed or client gone)",
            labels=labels,
        )
        for version in self.samples:
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
            queue.add_metric(key, version.queue_depth)
            for state, count in version.workers.items():
                workers.add_metric([*key, state], count)
            restarts.add_metric(key, version.restarts)
            dropped.add_metric(key, version.dropped)
            for name in STATUSES:
                model_status.add_metric([*key, name], float(name == version.status))
            for (name, dimensions, unit), value in sorted(stats.handler_totals().items()):
                custom.add_metric([*key, name, dimensions, unit], value)
        yield from (requests, latency, inference, batches, queue, workers, restarts, dropped)
        yield model_status
        yield custom
        if self.prediction_log_dropped is not None:
            yield CounterMetricFamily(
                "podium_prediction_log_dropped",
                "Entries the prediction log dropped because its queue was full",
                value=self.prediction_log_dropped,
            )


def exposition(samples: Iterable[Sample], prediction_log_dropped: int | None = None) -> bytes:
    """The Prometheus text format of every metric (the prediction log's drops when it is on)."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(Collector(samples, prediction_log_dropped))
    return generate_latest(collectors)
