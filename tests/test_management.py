"""The management API of a real server: registration, live scaling and version switches
under constant load with zero failed requests, draining, and its security defaults."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeArchive, Server, StartServer, free_port


@contextmanager
def constant_load(
    server: Server, body: object, path: str = "/predictions/echo"
) -> Iterator[list[int]]:
    """Keep 8 clients sending requests until the block ends; yields every status seen."""
    statuses: list[int] = []
    stop = threading.Event()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                statuses.append((await http.post(path, json=body)).status_code)

    async def clients() -> None:
        await asyncio.gather(*(client() for _ in range(8)))

    thread = threading.Thread(target=asyncio.run, args=(clients(),))
    thread.start()
    try:
        time.sleep(0.3)
        yield statuses
    finally:
        stop.set()
        thread.join()


def workers(server: Server, version: str = "1.0") -> list[dict[str, object]]:
    described = server.management.get(f"/models/echo/{version}").json()[0]
    found: list[dict[str, object]] = described["workers"]
    return found


def test_describe_and_list(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo", batch_size=4)
    make_archive("other")
    server = start_server()
    listed = server.management.get("/models").json()
    assert [m["modelName"] for m in listed["models"]] == ["echo", "other"]
    page = server.management.get("/models", params={"limit": 1}).json()
    assert len(page["models"]) == 1 and page["nextPageToken"] == "1"
    (described,) = server.management.get("/models/echo").json()
    assert described["batchSize"] == 4 and described["default"] is True
    (worker,) = described["workers"]
    assert worker["state"] == "idle" and worker["memoryUsage"] > 1_000_000
    assert worker["pid"] in server.worker_pids()
    assert server.management.get("/models/ghost").status_code == 404


def test_scale_up_and_down_under_load_fails_nothing(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=4)
    server = start_server()
    with constant_load(server, {"sleep": 0.005}) as statuses:
        up = server.management.put("/models/echo", params={"min_worker": 3})
        assert up.status_code == 200, up.text
        assert len(workers(server)) == 3
        time.sleep(0.5)
        down = server.management.put("/models/echo/1.0", params={"min_worker": 1})
        assert down.status_code == 200
        time.sleep(0.5)
    assert statuses and set(statuses) == {200}
    deadline = time.monotonic() + 5
    while len(server.worker_pids()) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.worker_pids()) == 1


def test_register_warm_and_switch_versions_under_load(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    server = start_server()
    make_archive("echo", version="2.0", options={"load_delay": 1})
    with constant_load(server, {"x": 1}) as statuses:
        registered = server.management.post("/models", params={"url": "echo-2.0.podium"})
        assert registered.status_code == 200, registered.text
        assert server.management.get("/models/echo/2.0").json()[0]["default"] is True
        time.sleep(0.3)
        assert server.management.put("/models/echo/1.0/set-default").status_code == 200
        time.sleep(0.3)
        assert server.management.delete("/models/echo/2.0").status_code == 200
        time.sleep(0.3)
    assert statuses and set(statuses) == {200}
    assert server.management.get("/models/echo/2.0").status_code == 404


def test_unregister_drains_in_flight_requests(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", batch_size=1)
    server = start_server()
    answers: list[int] = []
    slow = threading.Thread(
        target=lambda: answers.append(server.post("/predictions/echo", {"sleep": 1}).status_code)
    )
    slow.start()
    time.sleep(0.2)
    assert server.management.delete("/models/echo/1.0").status_code == 200
    slow.join()
    assert answers == [200]
    assert server.post("/predictions/echo", {"x": 1}).status_code == 404
    assert server.worker_pids() == []


def test_registration_errors(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo")
    server = start_server()
    post = server.management.post
    assert post("/models", params={"url": "echo-1.0.podium"}).status_code == 409
    assert post("/models", params={"url": "../../etc/passwd"}).status_code == 400
    assert post("/models", params={"url": "/etc/passwd"}).status_code == 400
    assert post("/models", params={"url": "missing.podium"}).status_code == 400
    wrong = post("/models", params={"url": "echo-1.0.podium", "model_name": "other"})
    assert wrong.status_code in (400, 409)
    bad_batch = post("/models", params={"batch_size": 0, "url": "x"})
    assert bad_batch.status_code == 400
    assert bad_batch.json()["type"] == "InvalidRequest"
    assert "batch_size" in bad_batch.json()["message"]
    assert server.management.put("/models/echo", params={"min_worker": -1}).status_code == 400
    wrong_method = server.management.delete("/models/echo")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == 405
    assert server.management.put("/models/echo/9/set-default").status_code == 404
    java = post("/models", params={"url": "echo-1.0.podium", "runtime": "java"})
    assert java.status_code == 400 and "Python handlers only" in java.json()["message"]
    handler = post("/models", params={"url": "echo-1.0.podium", "handler": "other.py"})
    assert handler.status_code == 400 and "archive the model" in handler.json()["message"]
    assert post("/models", params={"url": "x", "response_timeout": 0}).status_code == 400


def test_registration_sets_a_response_timeout(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    make_archive("slow", version="1.0")
    server = start_server("--models", "echo", "--request-timeout", "5")
    params = {"url": "slow-1.0.podium", "response_timeout": "0.5", "runtime": "python"}
    assert server.management.post("/models", params=params).status_code == 200
    (described,) = server.management.get("/models/slow").json()
    assert described["responseTimeout"] == 0.5
    assert server.post("/predictions/slow", {"sleep": 1}).status_code == 504
    assert server.post("/predictions/echo", {"sleep": 1}).status_code == 200


def test_url_registration_is_refused_without_connecting(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        for url in [f"http://127.0.0.1:{port}/m.podium", "http://169.254.169.254/latest/x"]:
            refused = server.management.post("/models", params={"url": url})
            assert refused.status_code == 403
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing connected
    finally:
        listener.close()


def test_every_management_route_needs_the_token(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    with httpx.Client(base_url=server.management_url) as anonymous:
        for method, path in [
            ("GET", "/models"),
            ("GET", "/models/echo"),
            ("POST", "/models?url=echo-1.0.podium"),
            ("PUT", "/models/echo?min_worker=2"),
            ("PUT", "/models/echo/1.0/set-default"),
            ("DELETE", "/models/echo/1.0"),
            ("POST", "/token"),
        ]:
            assert anonymous.request(method, path).status_code == 401
            wrong = anonymous.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert "nope" not in wrong.text
        # The docs hold no data and load in a browser (which sends no token).
        for path in ["/docs", "/redoc", "/openapi.json", "/docs/static/redoc/LICENSE"]:
            assert anonymous.get(path).status_code == 200
        assert "echo" not in anonymous.get("/openapi.json").text
    assert server.post("/predictions/echo", {"x": 1}).status_code == 200
    # Management routes are not on the inference port, nor inference on management.
    assert server.http.get("/models").status_code == 404
    assert server.management.post("/predictions/echo", json={"x": 1}).status_code == 404


def test_generated_token_file_and_loopback_default(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    import subprocess
    import sys

    make_archive("echo")
    token_file = tmp_path / "token"
    port, management = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podium.cli",
            "serve",
            "--model-store",
            str(tmp_path / "store"),
            "--port",
            str(port),
            "--management-port",
            str(management),
            "--grpc-port",
            "0",
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{management}/models")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(f"http://127.0.0.1:{management}/models", headers=headers)
        assert listed.status_code == 200
        connections = subprocess.run(
            ["ss", "-ltnH"], capture_output=True, text=True, check=False
        ).stdout
        bound = [line.split()[3] for line in connections.splitlines() if f":{management}" in line]
        assert bound and all(address.startswith("127.0.0.1:") for address in bound)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_management_commands(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    import orjson
    from click.testing import CliRunner

    from podium.cli import main
    from tests.conftest import TOKEN

    make_archive("echo")
    server = start_server()
    make_archive("echo", version="2.0")
    connection = ["--url", server.management_url, "--token", TOKEN]

    def run(*args: str) -> object:
        result = CliRunner().invoke(main, [*args, *connection])
        assert result.exit_code == 0, result.output
        return orjson.loads(result.output)

    assert run("models") == {"models": [{"modelName": "echo", "modelUrl": "echo/1.0"}]}
    run("register", "echo-2.0.podium", "--batch-size", "8")
    described = run("models", "echo", "2.0")
    assert isinstance(described, list) and described[0]["batchSize"] == 8
    run("scale", "echo", "2.0", "--min-workers", "2")
    assert len(workers(server, "2.0")) == 2
    run("set-default", "echo", "1.0")
    run("unregister", "echo", "2.0")
    missing = CliRunner().invoke(main, ["unregister", "echo", "2.0", *connection])
    assert missing.exit_code == 1
    assert "ModelNotFound" in missing.output
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    by_file = CliRunner().invoke(
        main, ["models", "--url", server.management_url, "--token-file", str(token_file)]
    )
    assert by_file.exit_code == 0
    denied = CliRunner().invoke(main, ["models", "--url", server.management_url, "--token", "x"])
    assert denied.exit_code == 1


def test_token_rotation(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    token_file = tmp_path / "rotated"
    server = start_server("--token-file", str(token_file))
    fresh = server.management.post("/token").json()["token"]
    assert token_file.read_text().strip() == fresh
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert server.management.get("/models").status_code == 401  # the old token is dead
    renewed = {"Authorization": f"Bearer {fresh}"}
    assert server.management.get("/models", headers=renewed).status_code == 200


def test_inference_token_guards_everything_but_ping(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--inference-token", "secret-inference", ready=False)
    deadline = time.monotonic() + 30
    while server.http.get("/ping").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert server.post("/predictions/echo", {"x": 1}).status_code == 401
    assert server.http.get("/metrics").status_code == 401
    # The docs load without it, and their document names no model.
    assert server.http.get("/docs").status_code == 200
    assert "echo" not in server.http.get("/openapi.json").text
    allowed = {"Authorization": "Bearer secret-inference"}
    assert server.post("/predictions/echo", {"x": 1}, headers=allowed).status_code == 200
    # The management token does not open inference, nor the other way round.
    assert server.management.post("/predictions/echo", json={"x": 1}).status_code == 404


def test_inference_token_is_required_beyond_loopback(tmp_path: Path) -> None:
    from podium.frontends.rest.run import inference_token
    from podium.settings import Settings

    token_file = tmp_path / "token"
    assert inference_token(Settings(host="127.0.0.1", token_file=token_file)) is None
    generated = inference_token(Settings(host="0.0.0.0", token_file=token_file))
    assert generated
    written = tmp_path / "token.inference"
    assert written.read_text().strip() == generated
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    assert inference_token(Settings(host="0.0.0.0", auth=False, token_file=token_file)) is None
    assert inference_token(Settings(host="::", inference_token="given")) == "given"


@contextmanager
def file_server(folder: Path) -> Iterator[str]:
    """A loopback HTTP server for ``folder``; ``/moved/...`` redirects elsewhere."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/moved/"):
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_registration_from_an_allowed_url(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    make_archive("remote", store=tmp_path / "remote")
    with file_server(tmp_path / "remote") as base:
        server = start_server("--allowed-urls", f"{base}/")
        post = server.management.post
        assert post("/models", params={"url": f"{base}/../remote-1.0.podium"}).status_code == 200
        assert server.post("/predictions/remote", {"x": 1}).status_code == 200
        assert (tmp_path / "store" / "remote-1.0.podium").is_file()
        assert post("/models", params={"url": f"{base}/moved/a.podium"}).status_code == 403
        assert post("/models", params={"url": f"{base}/missing.podium"}).status_code == 400
        assert post("/models", params={"url": f"{base}/notes.txt"}).status_code == 400
        outside = base.replace("127.0.0.1", "localhost") + "/remote-1.0.podium"
        assert post("/models", params={"url": outside}).status_code == 403
        assert post("/models", params={"url": "file:///etc/passwd"}).status_code == 403


def test_link_local_hosts_are_refused_even_if_allowed(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server("--allowed-urls", "http://169.254.169.254/")
    refused = server.management.post(
        "/models", params={"url": "http://169.254.169.254/latest/x.podium"}
    )
    assert refused.status_code == 403
    assert "refused address" in refused.json()["message"]


def test_asynchronous_registration_and_scaling(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    make_archive("later", options={"load_delay": 0.5})
    started = server.management.post(
        "/models", params={"url": "later-1.0.podium", "synchronous": "false"}
    )
    assert started.status_code == 202
    scaling = server.management.put("/models/echo", params={"min_worker": 2, "synchronous": False})
    assert scaling.status_code == 202
    deadline = time.monotonic() + 20
    while server.post("/predictions/later", {"x": 1}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    while len(workers(server)) != 2 or not server.management.get("/models/echo").json()[0]["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_model_settings_override_archives_and_pin_a_default(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo", version="1.0")
    make_archive("echo", version="2.0", batch_size=4)
    chosen = '{"echo": {"batch_size": 9, "max_workers": 2}, "echo/1.0": {"default": true}}'
    server = start_server(env={"PODIUM_MODEL_SETTINGS": chosen})
    versions = {v["modelVersion"]: v for v in server.management.get("/models/echo").json()}
    assert versions["2.0"]["batchSize"] == 9
    assert versions["2.0"]["maxWorkers"] == 2
    assert versions["1.0"]["default"] is True
    assert versions["2.0"]["default"] is False
    assert server.post("/predictions/echo", {"x": 1}).status_code == 200


def test_scaling_below_the_minimum_is_refused_and_serve_says_where_it_listens(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    refused = server.management.put("/models/echo", params={"min_worker": 3, "max_worker": 1})
    assert refused.status_code == 400
    assert refused.json()["message"] == "max_worker 1 is below min_worker 3"
    (described,) = server.management.get("/models/echo").json()
    assert (described["minWorkers"], described["maxWorkers"]) == (1, 1)
    log = server.log.read_text()
    assert f"inference API on {server.url}" in log
    assert f"management API on {server.management_url}" in log
