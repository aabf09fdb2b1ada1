"""Hostile and odd input through a real server: deep JSON, one-write heads, foreign Host
headers, token schemes, numbers JSON cannot carry, and the drain answer. Each is answered
with a clear error and the server keeps serving."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest

from tests.conftest import TOKEN, MakeArchive, Server, StartServer
from tests.test_server import assert_error, assert_serving


@pytest.fixture
def echo_server(make_archive: MakeArchive, start_server: StartServer) -> Server:
    make_archive("echo", batch_size=8)
    return start_server("--request-timeout", "5")


def nested(depth: int) -> bytes:
    return b'{"text":' + b"[" * depth + b"]" * depth + b"}"


def test_deep_json_is_400_naming_the_limit_and_jams_nothing(echo_server: Server) -> None:
    for path in ("/predict", "/predictions/echo"):
        response = echo_server.post(
            path, content=nested(500), headers={"content-type": "application/json"}
        )
        assert_error(response, 400, "InvalidRequest", "nested deeper than 64")
    # The worker is not left busy: every later request is answered at once.
    for _ in range(3):
        assert_serving(echo_server)
    # Just under the limit still reaches the handler (lists of lists are fine).
    ok = echo_server.post(
        "/predict", content=nested(63), headers={"content-type": "application/json"}
    )
    assert ok.status_code == 200, ok.text
    # Deep nesting in a body sent without a JSON content type is refused the same way.
    form = echo_server.post("/predictions/echo", content=nested(500))
    assert_error(form, 400, "InvalidRequest", "nested deeper")
    assert_serving(echo_server)


def test_brackets_inside_strings_are_not_nesting(echo_server: Server) -> None:
    text = "[" * 400 + "{" * 400
    response = echo_server.post("/predict", {"text": text})
    assert response.status_code == 200
    assert response.json()["echo"]["text"] == text


def test_big_integers_are_exact_both_ways(echo_server: Server) -> None:
    big = 2**70 + 1
    response = echo_server.post(
        "/predictions/echo",
        content=b'{"n": %d, "m": -%d}' % (big, big),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    # The stdlib parser keeps every digit (orjson alone would have made floats of them).
    echoed = response.json()["echo"]
    assert echoed == {"n": big, "m": -big}


def test_non_finite_answers_are_a_clear_500(echo_server: Server) -> None:
    response = echo_server.post("/predictions/echo", {"answer_nan": True})
    assert_error(response, 500, "HandlerError", "NaN")
    assert_serving(echo_server)


def test_head_over_64_kib_in_one_write_is_431(echo_server: Server) -> None:
    host, port = echo_server.url.removeprefix("http://").split(":")
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        + b"a" * (100 * 1024)
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert_serving(echo_server)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "10.0.0.1"])
def test_foreign_host_header_is_refused_on_loopback(echo_server: Server, host: str) -> None:
    response = echo_server.post("/predict", {"text": "x"}, headers={"host": host})
    assert_error(response, 421, "MisdirectedRequest", host.partition(":")[0])
    assert echo_server.http.get("/ping", headers={"host": host}).status_code == 421
    port = echo_server.url.rsplit(":", 1)[1]
    for good in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", "[::1]"):
        assert echo_server.post("/predict", {"t": 1}, headers={"host": good}).status_code == 200
    assert_serving(echo_server)


def test_allowed_hosts_extend_the_loopback_names(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--allowed-hosts", "models.internal")
    ok = server.post("/predict", {"t": 1}, headers={"host": "models.internal:443"})
    assert ok.status_code == 200
    assert server.post("/predict", {"t": 1}, headers={"host": "evil.example"}).status_code == 421
    # The management port checks it too (a web page must not reach it by rebinding).
    refused = server.management.get("/models", headers={"host": "evil.example"})
    assert refused.status_code == 421
    assert server.management.get("/models").status_code == 200


def test_bearer_scheme_is_case_insensitive(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    for scheme in ("bearer", "BEARER", "Bearer"):
        answer = server.management.get("/models", headers={"authorization": f"{scheme} {TOKEN}"})
        assert answer.status_code == 200, scheme
    wrong = server.management.get("/models", headers={"authorization": f"Basic {TOKEN}"})
    assert wrong.status_code == 401


def test_requests_past_the_drain_timeout_get_a_json_503(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--drain-timeout", "1", "--request-timeout", "30")
    answers: list[httpx.Response] = []

    def slow() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers.append(client.post("/predict", json={"sleep": 6}))

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    thread.join(timeout=20)
    assert answers, "the request got no answer"
    assert_error(answers[0], 503, "ShuttingDown")
    assert answers[0].headers["retry-after"]
    assert server.process.wait(timeout=20) == 0
