"""Worker processes under faults: crashes, kills, segfaults, slow loads, SIGTERM."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import MakeArchive, Server, StartServer


def wait_serving_again(server: Server, deadline: float) -> float:
    start = time.monotonic()
    while time.monotonic() < start + deadline:
        response = server.post("/predictions/echo", {"ok": True})
        if response.status_code == 200:
            return time.monotonic() - start
        assert response.status_code == 503
        time.sleep(0.05)
    raise AssertionError("not serving again in time")


def test_crash_answers_its_batch_503_and_restarts(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    (first,) = server.worker_pids()
    response = server.post("/predictions/echo", {"crash": "exit"})
    assert response.status_code == 503
    assert response.json()["type"] == "WorkerDied"
    assert response.headers["retry-after"]
    assert wait_serving_again(server, 5) < 5
    assert server.worker_pids() != [first]
    server.wait_ready()


def test_segfault_is_contained(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo")
    server = start_server()
    assert server.post("/predictions/echo", {"crash": "segfault"}).status_code == 503
    wait_serving_again(server, 5)


def test_killing_a_worker_under_load_leaves_no_request_unanswered(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=16)
    server = start_server("--workers", "2")
    victim = server.worker_pids()[0]

    async def load() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def one(i: int) -> int:
                await asyncio.sleep(i * 0.002)
                response = await client.post("/predictions/echo", json={"i": i, "sleep": 0.01})
                if response.status_code == 200:
                    assert response.json()["echo"]["i"] == i
                return response.status_code

            async def kill() -> None:
                await asyncio.sleep(0.3)
                os.kill(victim, signal.SIGKILL)

            results = await asyncio.gather(*(one(i) for i in range(400)), kill())
            return [r for r in results if r is not None]

    statuses = asyncio.run(load())
    assert len(statuses) == 400  # every request got an answer
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) > 300
    assert wait_serving_again(server, 5) < 5
    server.wait_ready(timeout=5)
    assert victim not in server.worker_pids()


def test_ping_is_503_while_a_worker_is_down(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", options={"load_delay": 1.5})
    server = start_server()
    (pid,) = server.worker_pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    statuses = set()
    while time.monotonic() < deadline and 503 not in statuses:
        statuses.add(server.http.get("/ping").status_code)
    assert 503 in statuses
    server.wait_ready(timeout=10)


def test_a_model_still_retrying_its_loads_keeps_ping_unhealthy(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", options={"fail_load": True})
    # (once its budget of failed loads is spent it is failed instead: tests/test_pool.py)
    server = start_server("--max-load-failures", "1000", ready=False)
    deadline = time.monotonic() + 15  # the first load fails within a second; slower if loaded
    while time.monotonic() < deadline and "refuses to load" not in server.log.read_text():
        time.sleep(0.1)
    assert "refuses to load" in server.log.read_text()
    assert server.http.get("/ping").status_code == 503
    assert server.post("/predictions/echo", {"x": 1}).status_code == 503


def test_sigterm_drains_in_flight_requests(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1)
    server = start_server("--workers", "2")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        in_flight = [
            pool.submit(server.http.post, "/predictions/echo", json={"sleep": 1, "i": i})
            for i in range(4)
        ]
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        answers = [f.result() for f in in_flight]
    assert [a.status_code for a in answers] == [200] * 4
    assert server.process.wait(timeout=20) == 0
    assert server.worker_pids() == []


def test_load_timeout_kills_and_retries_a_slow_loader(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", options={"load_delay": 30})
    server = start_server("--load-timeout", "0.5", ready=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.log.read_text().count("load timed out") < 2:
        time.sleep(0.1)
    assert server.log.read_text().count("load timed out") >= 2
    assert server.http.get("/ping").status_code == 503


def test_killing_a_worker_while_it_loads_its_model(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", options={"load_delay": 1})
    server = start_server("--workers", "2")
    first, second = server.worker_pids()
    os.kill(first, signal.SIGKILL)

    # The replacement is loading now (1 s); kill it mid-load while requests flow.
    def replacement() -> int:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            fresh = [pid for pid in server.worker_pids() if pid not in (first, second)]
            if fresh:
                return fresh[0]
            time.sleep(0.01)
        raise AssertionError("no replacement worker started")

    loading = replacement()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(server.post, "/predictions/echo", {"i": i}) for i in range(100)]
        os.kill(loading, signal.SIGKILL)
        statuses = [a.result().status_code for a in answers]
    assert statuses == [200] * 100  # the healthy worker answered everything
    server.wait_ready(timeout=5)
    assert len(server.worker_pids()) == 2


def test_pool_grows_under_backlog_and_shrinks_when_idle(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1, min_workers=1, max_workers=2)
    server = start_server("--scale-down-after", "1")
    assert len(server.worker_pids()) == 1
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = [pool.submit(server.post, "/predictions/echo", {"sleep": 0.3}) for _ in range(24)]
        assert all(a.result().status_code == 200 for a in answers)
    pids = {a.result().json()["pid"] for a in answers}
    assert len(pids) == 2  # a second worker joined and served
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(server.worker_pids()) > 1:
        time.sleep(0.1)
    assert len(server.worker_pids()) == 1
    assert server.http.get("/ping").status_code == 200
    assert server.post("/predictions/echo", {"after": 1}).status_code == 200


def test_a_worker_is_ready_only_after_its_warm_up(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.txt"
    make_archive(
        "echo",
        warmup=[{"tag": "warm", "sleep": 1.5}],
        options={"journal": str(journal)},
    )
    make_archive("cold", warmup=[{"raise": "bad warm-up"}])
    server = start_server("--max-load-failures", "1000", ready=False)
    assert server.http.get("/ping").status_code == 503
    assert server.post("/predictions/echo", {"x": 1}).status_code == 503
    deadline = time.monotonic() + 10
    while "warm" not in (journal.read_text() if journal.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    while server.post("/predictions/echo", {"x": 1}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "'tag': 'warm'" in journal.read_text().splitlines()[0]
    # A model whose warm-up fails never becomes ready, and says why.
    assert server.post("/predictions/cold", {"x": 1}).status_code == 503
    assert server.http.get("/ping").status_code == 503
    assert "warm-up request 0 failed with 500" in server.log.read_text()


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_a_killed_front_end_leaves_no_listener_and_no_worker(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--request-timeout", "60")
    (worker,) = server.worker_pids()
    port = int(server.url.rsplit(":", 1)[1])
    management_port = int(server.management_url.rsplit(":", 1)[1])

    def stuck() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as http,
            contextlib.suppress(httpx.TransportError),
        ):
            http.post("/predictions/echo", json={"sleep": 30})

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    time.sleep(0.5)  # the worker is inside its handler now
    server.process.kill()
    server.process.wait()
    # The worker held no listening socket, and died with its front end.
    assert not listening(port)
    assert not listening(management_port)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(worker) and psutil.Process(worker).status() != "zombie":
        assert time.monotonic() < deadline, "the worker outlived its front end"
        time.sleep(0.05)
    # A new server takes the same ports at once.
    again = start_server(ports=(port, management_port))
    assert again.post("/predictions/echo", {"x": 1}).status_code == 200


def test_new_connections_are_refused_during_a_drain(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--drain-timeout", "10")
    port = int(server.url.rsplit(":", 1)[1])
    answers: list[int] = []

    def slow() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answers.append(http.post("/predictions/echo", json={"sleep": 2}).status_code)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.process.poll() is None  # still draining
    assert not listening(port)
    thread.join(timeout=10)
    assert answers == [200]  # the request in flight was drained
    assert server.process.wait(timeout=20) == 0


def test_a_stuck_handler_is_replaced_by_the_watchdog(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--request-timeout", "1", "--watchdog-grace", "0.5")
    (stuck,) = server.worker_pids()
    response = server.post("/predictions/echo", {"sleep": 120})
    assert response.status_code == 504
    start = time.monotonic()
    while server.post("/predictions/echo", {"after": "stuck"}).status_code != 200:
        assert time.monotonic() - start < 10, "the stuck worker was never replaced"
    assert stuck not in server.worker_pids()
    assert "stuck" in server.log.read_text()
    server.wait_ready(timeout=5)


def test_repeated_kills_never_leave_the_model_without_a_worker(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=4)
    server = start_server("--workers", "2", "--request-timeout", "10")
    answers: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=15) as http:
            while not stop.is_set():
                response = http.post("/predictions/echo", json={"sleep": 0.01})
                answers.append("ok" if response.status_code == 200 else response.json()["type"])

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        for _ in range(8):  # a worker killed every 0.75 s, twice as often as in the report
            time.sleep(0.75)
            pids = server.worker_pids()
            if pids:
                os.kill(random.choice(pids), signal.SIGKILL)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=20)
    assert len(answers) > 100
    # Only the batches a kill interrupted fail; the model always has a worker to go to.
    assert set(answers) <= {"ok", "WorkerDied"}, set(answers)
    assert answers.count("ok") / len(answers) > 0.9
    server.wait_ready(timeout=10)
