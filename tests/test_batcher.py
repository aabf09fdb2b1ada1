"""Dynamic batching seen from outside: batch sizes, order, deadlines and disconnects."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeArchive, Server, StartServer


def concurrent_posts(server: Server, bodies: list[object]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/predictions/echo", json=body) for body in bodies)
            )

    return asyncio.run(run())


@pytest.mark.parametrize("policy", ["adaptive", "fixed"])
def test_200_concurrent_requests_are_answered_in_batches(
    make_archive: MakeArchive, start_server: StartServer, policy: str
) -> None:
    make_archive("echo", batch_size=32, max_batch_delay=20, batching=policy)
    server = start_server()
    bodies: list[object] = [{"i": i, "sleep": 0.002} for i in range(200)]
    answers = concurrent_posts(server, bodies)
    assert [a.status_code for a in answers] == [200] * 200
    assert [a.json()["echo"]["i"] for a in answers] == list(range(200))
    sizes = [a.json()["batch_size"] for a in answers]
    assert max(sizes) > 1
    assert max(sizes) <= 32


def test_adaptive_batching_does_not_wait_at_low_load(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=32, max_batch_delay=500)
    server = start_server("--batching", "adaptive")
    start = time.monotonic()
    for _ in range(5):
        assert server.post("/predictions/echo", {"x": 1}).json()["batch_size"] == 1
    # Five sequential requests; a fixed 500 ms batch delay would take 2.5 s.
    assert time.monotonic() - start < 2.0


def test_fixed_batching_waits_for_company(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=4, max_batch_delay=300, batching="fixed")
    server = start_server()
    answers = concurrent_posts(server, [{"i": i} for i in range(4)])
    assert [a.json()["batch_size"] for a in answers] == [4] * 4


def test_expired_and_abandoned_requests_never_reach_the_worker(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.txt"
    make_archive("echo", batch_size=1, options={"journal": str(journal)})
    server = start_server("--request-timeout", "1")

    blocker = threading.Thread(
        target=server.post, args=("/predictions/echo", {"tag": "blocker", "sleep": 2.5})
    )
    blocker.start()
    time.sleep(0.2)
    # Queued behind the blocker: this one gives up (client disconnects) ...
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/predictions/echo", json={"tag": "abandoned"}, timeout=0.3)
    # ... and this one passes its deadline in the queue.
    expired = server.post("/predictions/echo", {"tag": "expired"})
    assert expired.status_code == 504
    blocker.join()
    assert server.post("/predictions/echo", {"tag": "after"}).status_code == 200
    seen = journal.read_text()
    assert "blocker" in seen
    assert "after" in seen
    assert "abandoned" not in seen
    assert "expired" not in seen
