"""Prometheus metrics: what the request path counted, read at scrape time."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from podium.observability.stats import Histogram
from tests.conftest import MakeArchive, Server, StartServer


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = server.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram([1, 2, 4])
    for value in (1, 1, 3, 100):
        histogram.observe(value)
    assert histogram.buckets() == [("1.0", 2), ("2.0", 2), ("4.0", 3), ("+Inf", 4)]
    assert histogram.total == 105


def test_metrics_count_what_happened(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo", batch_size=8)
    server = start_server()

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await asyncio.gather(
                *(client.post("/predictions/echo", json={"i": i, "sleep": 0.01}) for i in range(40))
            )

    asyncio.run(burst())
    assert server.post("/predictions/echo", {"invalid": "no"}).status_code == 400
    assert server.post("/predictions/echo", {"crash": "exit"}).status_code == 503
    server.wait_ready()
    metrics = scrape(server)
    model = {("model", "echo"), ("version", "1.0")}

    def value(name: str, **labels: str) -> float:
        return metrics[(name, frozenset(model | set(labels.items())))]

    assert value("podium_requests_total", status="200") == 40
    assert value("podium_requests_total", status="400") == 1
    assert value("podium_requests_total", status="503") == 1
    assert value("podium_request_latency_seconds_count") == 41  # answers from a worker
    batches = value("podium_batch_size_count")
    assert batches < 41  # 40 concurrent requests were batched
    assert value("podium_batch_size_sum") == 42
    assert value("podium_batch_size_bucket", le="1.0") < batches
    # Worker messages: one per handler batch, or fewer when a backlog shared a message.
    assert 1 <= value("podium_inference_latency_seconds_count") <= batches
    assert value("podium_workers", state="idle") == 1
    assert value("podium_worker_restarts_total") == 1
    assert value("podium_queue_depth") == 0
