"""Refusals at the edge, through a real server: a model whose queue is full answers 503
from the HTTP layer, keeps the connection usable, counts the refusal, holds a connection
that retries at once, and never answers 503 where the Host or token checks say otherwise."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeArchive, Server, StartServer

BODY = b'{"a": 1}'


def request(path: bytes = b"/predictions/echo", host: bytes = b"localhost") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path, host, len(BODY), BODY)
    )


def read_answers(sock: socket.socket, count: int) -> bytes:
    received = b""
    while received.count(b"HTTP/1.1 ") < count or not received.endswith((b"}", b"\n")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def fill(
    server: Server, seconds: float, headers: dict[str, str] | None = None
) -> list[threading.Thread]:
    """Occupy a one-worker server whose queue holds one: a request runs for ``seconds``
    while another waits. Returns the threads sending them (join them at the end)."""
    threads = [
        threading.Thread(
            target=lambda: httpx.post(
                f"{server.url}/predictions/echo",
                json={"sleep": seconds},
                headers=headers,
                timeout=20,
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    return threads


@pytest.fixture
def busy(make_archive: MakeArchive, start_server: StartServer) -> Iterator[Server]:
    """A server whose one worker runs a 3 s request while another fills the queue (1)."""
    make_archive("echo", batch_size=1)
    server = start_server("--workers", "1", "--max-queue", "1", "--request-timeout", "20")
    threads = fill(server, 3)
    yield server
    for thread in threads:
        thread.join()


def refusals(server: Server) -> float:
    text = server.http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "podium_requests_total" and sample.labels["status"] == "503":
                return sample.value
    return 0.0


def test_a_full_queue_is_refused_and_the_connection_goes_on(busy: Server) -> None:
    before = refusals(busy)
    with connect(busy) as sock:
        # The refused request's body is read and dropped; the next request on the
        # connection, in the same write, is answered as usual.
        sock.sendall(request() + b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answers = read_answers(sock, 2)
    first, _, second = answers.partition(b"}HTTP/1.1 ")
    assert first.startswith(b"HTTP/1.1 503")
    assert b"retry-after: 1" in first.lower()
    assert b'"type":"QueueFull"' in first
    assert second.startswith(b"200 OK")
    assert refusals(busy) == before + 1


def test_a_connection_that_retries_at_once_is_held(busy: Server) -> None:
    with connect(busy) as sock:
        sock.sendall(request())
        assert read_answers(sock, 1).startswith(b"HTTP/1.1 503")
        start = time.monotonic()
        sock.sendall(request())  # ignoring Retry-After
        again = read_answers(sock, 1)
        waited = time.monotonic() - start
    # Not read until Retry-After (1 s) passed or the model had room: never at once.
    assert waited > 0.5, waited
    assert again.startswith((b"HTTP/1.1 503", b"HTTP/1.1 200"))


def test_without_holding_a_retry_is_refused_at_once(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1)
    server = start_server("--workers", "1", "--max-queue", "1", "--no-hold-refused")
    slow = fill(server, 2)
    with connect(server) as sock:
        for _ in range(3):
            start = time.monotonic()
            sock.sendall(request())
            assert read_answers(sock, 1).startswith(b"HTTP/1.1 503")
            assert time.monotonic() - start < 0.5
    for thread in slow:
        thread.join()


def test_the_edge_never_answers_for_the_host_or_token_checks(busy: Server) -> None:
    with connect(busy) as sock:
        sock.sendall(request(host=b"evil.example"))
        assert read_answers(sock, 1).startswith(b"HTTP/1.1 421")
    with connect(busy) as sock:
        sock.sendall(request(path=b"/predictions/ghost"))
        assert read_answers(sock, 1).startswith(b"HTTP/1.1 404")


def test_the_edge_never_answers_without_the_inference_token(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1)
    server = start_server("--workers", "1", "--max-queue", "1", "--inference-token", "sesame")
    slow = fill(server, 2, {"authorization": "Bearer sesame"})
    with connect(server) as sock:
        sock.sendall(request())
        assert read_answers(sock, 1).startswith(b"HTTP/1.1 401")
    with connect(server) as sock:
        sock.sendall(request().replace(b"\r\n\r\n", b"\r\nAuthorization: bearer sesame\r\n\r\n"))
        assert read_answers(sock, 1).startswith(b"HTTP/1.1 503")
    for thread in slow:
        thread.join()
