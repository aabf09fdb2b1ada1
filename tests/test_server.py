"""The inference routes of a real ``podium serve``: answers, every error status, and the
server still serving after each."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import httpx_sse
import ndjson
import pytest

from tests.conftest import MakeArchive, Server, StartServer, tamper


@pytest.fixture
def echo_server(make_archive: MakeArchive, start_server: StartServer) -> Server:
    make_archive("echo", batch_size=8)
    make_archive("echo", version="2.0", batch_size=8)
    return start_server("--request-timeout", "2", "--max-body-bytes", "20000")


def assert_serving(server: Server) -> None:
    response = server.post("/predictions/echo", {"after": "error"})
    assert response.status_code == 200
    assert response.json()["echo"] == {"after": "error"}


def assert_error(response: httpx.Response, status: int, kind: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == status
    assert body["type"] == kind
    assert fragment in body["message"]


def test_json_and_bytes_reach_the_handler(echo_server: Server) -> None:
    assert echo_server.post("/predictions/echo", {"a": [1, 2]}).json()["echo"] == {"a": [1, 2]}
    raw = echo_server.post(
        "/predictions/echo", content=b"\x00\xff", headers={"content-type": "image/png"}
    )
    assert raw.json()["echo"] == "00ff"


def test_versions_and_default(echo_server: Server) -> None:
    first = echo_server.post("/predictions/echo/1.0", {"v": 1})
    assert first.status_code == 200
    # The highest version is the default.
    assert echo_server.post("/predictions/echo", {"v": 2}).status_code == 200
    assert echo_server.post("/predict", {"v": 3}).json()["echo"] == {"v": 3}


def test_malformed_json_is_400(echo_server: Server) -> None:
    response = echo_server.post(
        "/predictions/echo", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "InvalidRequest", "not valid JSON")
    assert_serving(echo_server)


def test_handler_rejection_is_400_and_only_for_that_request(echo_server: Server) -> None:
    response = echo_server.post("/predictions/echo", {"invalid": "field x must be positive"})
    assert_error(response, 400, "InvalidInput", "field x must be positive")
    assert_serving(echo_server)


@pytest.mark.parametrize(
    "path", ["/predictions/nope", "/predictions/echo/9.9", "/predictions/echo/1.0/extra"]
)
def test_unknown_model_or_version_is_404(echo_server: Server, path: str) -> None:
    assert_error(echo_server.post(path, {"x": 1}), 404, "ModelNotFound")
    assert_serving(echo_server)


def test_body_over_limit_is_413(echo_server: Server) -> None:
    response = echo_server.post("/predictions/echo", content=b"x" * 50_000)
    assert_error(response, 413, "PayloadTooLarge", "20000")
    assert_serving(echo_server)


def test_chunked_body_over_limit_is_413(echo_server: Server) -> None:
    def chunks() -> object:
        for _ in range(10):
            yield b"y" * 5000

    response = echo_server.http.post("/predictions/echo", content=chunks())  # type: ignore[arg-type]
    assert_error(response, 413, "PayloadTooLarge")
    assert_serving(echo_server)


def test_bad_content_length_is_refused(echo_server: Server) -> None:
    host, port = echo_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /predictions/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert_serving(echo_server)


def test_handler_exception_is_500_and_worker_keeps_serving(echo_server: Server) -> None:
    pids = echo_server.worker_pids()
    response = echo_server.post("/predictions/echo", {"raise": "boom"})
    assert_error(response, 500, "HandlerError", "ValueError: boom")
    assert "Traceback" not in response.text
    assert_serving(echo_server)
    assert echo_server.worker_pids() == pids


def test_timeout_is_504(echo_server: Server) -> None:
    response = echo_server.post("/predictions/echo", {"sleep": 3})
    assert_error(response, 504, "RequestTimeout")
    assert_serving(echo_server)


def test_a_handler_streams_parts_with_send_partial_as_ndjson(echo_server: Server) -> None:
    with echo_server.http.stream("POST", "/predictions/echo", json={"stream": 3}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        assert answer.headers["transfer-encoding"] == "chunked"
        # A standard NDJSON reader, over a stream re-chunked one byte at a time (a proxy's
        # worst case): the parts come back whole, in order.
        body = b"".join(answer.iter_bytes(chunk_size=1))
    parts = ndjson.loads(body.decode())
    assert parts[:3] == [{"part": 0}, {"part": 1}, {"part": 2}]
    assert parts[3]["echo"] == {"stream": 3} and len(parts) == 4


def test_a_client_that_asks_for_server_sent_events_gets_them(echo_server: Server) -> None:
    body = {"stream": 2}
    with httpx_sse.connect_sse(echo_server.http, "POST", "/predictions/echo", json=body) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-cache"
        events = [json.loads(event.data) for event in source.iter_sse()]
    assert events[:2] == [{"part": 0}, {"part": 1}]
    assert events[2]["echo"] == body and len(events) == 3


def test_a_part_for_no_request_or_not_encodable_is_a_handler_error(echo_server: Server) -> None:
    nowhere = echo_server.post("/predictions/echo", {"stream": 1, "bad_part": "index"})
    assert_error(nowhere, 500, "HandlerError", "no request 1 in a batch of 1")
    wrong = echo_server.post("/predictions/echo", {"stream": 1, "bad_part": "type"})
    assert_error(wrong, 500, "HandlerError", "not JSON-serialisable")
    assert_serving(echo_server)


def test_a_stream_whose_next_part_is_late_is_cut(echo_server: Server) -> None:
    # The first part came; the answer after it takes longer than the 2 s request timeout.
    with echo_server.http.stream(
        "POST", "/predictions/echo", json={"stream": 1, "sleep": 3}
    ) as answer:
        assert answer.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            b"".join(answer.iter_bytes())
    assert "streamed answer cut short" in echo_server.log.read_text()
    assert_serving(echo_server)
    # Counted once, as what the client got in the end: a timeout, not a success.
    counts = {
        line.split('status="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in echo_server.http.get("/metrics").text.splitlines()
        if line.startswith("podium_requests_total{") and 'model="echo"' in line
    }
    assert counts.get("504") == 1
    assert counts.get("200") == 1  # assert_serving's request


def test_wrong_method_and_unknown_route(echo_server: Server) -> None:
    assert echo_server.http.get("/predictions/echo").status_code == 405
    assert echo_server.http.get("/nothing-here").status_code == 404
    assert_serving(echo_server)


def test_hostile_paths_and_headers(echo_server: Server) -> None:
    for path in ["/predictions/..%2F..%2Fetc", "/predictions/%00", "/predictions/" + "a" * 5000]:
        assert echo_server.post(path, {"x": 1}).status_code in (404, 414)
    weird = echo_server.post(
        "/predictions/echo", content=b"\xff\xfe", headers={"content-type": "application/json"}
    )
    assert_error(weird, 400, "InvalidRequest")
    assert_serving(echo_server)


def test_queue_full_is_503_with_retry_after(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1)
    server = start_server("--max-queue", "1")
    with httpx.Client(base_url=server.url, timeout=30) as other:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            # One request occupies the worker, one waits in the queue, the rest bounce.
            slow = [
                pool.submit(other.post, "/predictions/echo", json={"sleep": 1}) for _ in range(4)
            ]
            statuses = sorted(f.result().status_code for f in slow)
    assert statuses.count(200) >= 2
    assert 503 in statuses
    bounced = next(f.result() for f in slow if f.result().status_code == 503)
    assert bounced.headers["retry-after"] == "1"
    assert bounced.json()["type"] == "QueueFull"
    assert_serving(server)


def test_not_ready_is_503_and_ping_tells_the_truth(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", options={"load_delay": 2})
    server = start_server(ready=False)
    ping = server.http.get("/ping")
    assert ping.status_code == 503
    assert ping.headers["retry-after"]
    assert_error(server.post("/predictions/echo", {"x": 1}), 503, "ModelNotReady")
    server.wait_ready()
    assert_serving(server)


def test_docs_and_openapi(echo_server: Server) -> None:
    assert echo_server.http.get("/docs").status_code == 200
    paths = echo_server.http.get("/openapi.json").json()["paths"]
    assert {"/ping", "/predict", "/predictions/{model}", "/predictions/{model}/{version}"} <= set(
        paths
    )


def test_tampered_archive_is_not_served(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    tamper(make_archive("other"), "echo.py", b"# injected\n")
    server = start_server()
    assert_serving(server)
    assert_error(server.post("/predictions/other", {"x": 1}), 404, "ModelNotFound")
    assert "other-1.0.podium" in server.log.read_text()


def raw_exchange(server: Server, data: bytes, expect: int = 1, until: bytes = b"") -> bytes:
    """Send raw bytes on one connection; read until ``expect`` responses (and ``until``)
    arrived."""
    host, port = server.url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        while received.count(b"HTTP/1.1 ") < expect or until not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_hostile_json_is_400(echo_server: Server) -> None:
    headers = {"content-type": "application/json"}
    # (an integer of 400 digits is valid JSON and kept exact; past 4,300 digits it is refused)
    for body in [b"[" * 5000 + b"]" * 5000, b"1" * 5000, b'{"a": NaN}', b"\x00"]:
        response = echo_server.post("/predictions/echo", content=body, headers=headers)
        assert_error(response, 400, "InvalidRequest")
    assert_serving(echo_server)


def test_predict_routes_by_query(echo_server: Server) -> None:
    assert_error(echo_server.post("/predict?model=ghost", {"x": 1}), 404, "ModelNotFound")
    assert echo_server.post("/predict?model=echo", {"x": 1}).json()["echo"] == {"x": 1}
    assert echo_server.post("/predict?model=echo&model=x&%ff=1", {"x": 2}).status_code == 200


def test_garbage_http_is_refused_and_the_server_lives(echo_server: Server) -> None:
    assert raw_exchange(echo_server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(
        b"HTTP/1.1 400"
    )
    host, port = echo_server.url.removeprefix("http://").split(":")
    # A request cut off mid-headers, and one cut off mid-body: the client gives up.
    for partial in [
        b"POST /predictions/echo HTTP/1.1\r\nX: y\r\n",
        b"POST /predictions/echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
    ]:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(partial)
    assert_serving(echo_server)


def test_pipelined_requests_get_answers_in_order(echo_server: Server) -> None:
    def request(i: int) -> bytes:
        body = b'{"i": %d}' % i
        return (
            b"POST /predictions/echo HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    answer = raw_exchange(
        echo_server, b"".join(request(i) for i in range(3)), expect=3, until=b'"i":2'
    )
    assert answer.count(b"HTTP/1.1 200") == 3
    assert answer.index(b'"i":0') < answer.index(b'"i":1') < answer.index(b'"i":2')


def test_other_routes_refuse_wrong_methods(echo_server: Server) -> None:
    for path in ["/ping", "/metrics", "/openapi.json"]:
        assert echo_server.http.post(path, content=b"x" * 100).status_code == 405
        assert echo_server.http.delete(path).status_code == 405
    assert echo_server.http.get("/ping?x=%00").status_code == 200
    assert_serving(echo_server)


def test_oversized_request_head_is_431(echo_server: Server) -> None:
    host, port = echo_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        # Just over the limit, and nothing more, so the server has read it all when it
        # closes (unread bytes would turn its close into a reset).
        sock.sendall(
            b"POST /predictions/echo HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431")
    # A large body after a small head is not a large head.
    body = b'{"pad": "' + b"b" * 15_000 + b'"}'
    assert echo_server.post("/predictions/echo", content=body).status_code == 200
    assert_serving(echo_server)


def test_slow_clients_are_cut_off(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo")
    server = start_server("--client-timeout", "0.5")
    host, port = server.url.removeprefix("http://").split(":")
    for partial in [
        b"POST /predictions/echo HTTP/1.1\r\nHost: localhost\r\n",  # a head that never ends
        b"POST /predictions/echo HTTP/1.1\r\nContent-Length: 50\r\n\r\n{",  # a stalled body
    ]:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(partial)
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408")
            assert time.monotonic() - started < 5
    # A request that waits on a slow model is not a slow client.
    assert server.post("/predictions/echo", {"sleep": 1.0}).status_code == 200
    assert_serving(server)
