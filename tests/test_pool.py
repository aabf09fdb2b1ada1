"""The crash-loop budget, through a real server: a model that cannot load fails alone,
says why everywhere, stops retrying, and starts afresh when registered again or scaled."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import TOKEN, MakeArchive, Server, StartServer


def wait_for(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def failed_loads(server: Server) -> int:
    return server.log.read_text().count("load failed (")


def test_a_model_that_cannot_load_fails_alone_and_says_why(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("good")
    make_archive("bad", options={"fail_load": True})
    server = start_server("--max-load-failures", "3", "--workers", "2")
    # /ping is healthy for the others, and lists the failed version with its reason.
    ping = server.http.get("/ping")
    assert ping.status_code == 200
    assert ping.json()["status"] == "Healthy"
    (failure,) = ping.json()["failed"]
    assert failure["model"] == "bad"
    assert failure["version"] == "1.0"
    assert "refuses to load" in failure["error"]
    assert server.post("/predictions/good", {"x": 1}).status_code == 200
    answer = server.post("/predictions/bad", {"x": 1})
    assert answer.status_code == 503
    assert answer.json()["type"] == "ModelFailed"
    assert "refuses to load" in answer.json()["message"]
    assert answer.headers["retry-after"]
    # It stopped retrying: three failed loads (a fourth if both workers were loading).
    time.sleep(0.5)
    loads = failed_loads(server)
    assert 3 <= loads <= 4
    time.sleep(1.5)
    assert failed_loads(server) == loads
    # One traceback (the first failure), then one line per failure.
    log = server.log.read_text()
    assert log.count("Traceback") == 1, log
    # So do the metrics, for alerting.
    metrics = server.http.get("/metrics").text
    assert 'podium_model_status{model="bad",status="failed",version="1.0"} 1.0' in metrics
    assert 'podium_model_status{model="good",status="ready",version="1.0"} 1.0' in metrics
    # The management API and `podium models` show it.
    (described,) = server.management.get("/models/bad").json()
    assert described["status"] == "failed"
    assert "refuses to load" in described["error"]
    assert described["workers"] == []
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "podium.cli",
            "models",
            "bad",
            "--url",
            server.management_url,
            "--token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "failed" in shown.stdout and "refuses to load" in shown.stdout, shown


def test_strict_health_makes_a_failed_model_unhealthy(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("good")
    make_archive("bad", options={"fail_load": True})
    server = start_server("--max-load-failures", "2", "--strict-health", ready=False)
    wait_for(lambda: "not retrying" in server.log.read_text())
    ping = server.http.get("/ping")
    assert ping.status_code == 503
    assert ping.json()["failed"][0]["model"] == "bad"
    assert server.post("/predictions/good", {"x": 1}).status_code == 200


def test_registration_answers_the_reason_and_scaling_retries(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("good")
    server = start_server("--max-load-failures", "2")
    make_archive("bad", options={"fail_load": True})
    answer = server.management.post("/models", params={"url": "bad-1.0.podium"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"] == "ModelFailed"
    assert "refuses to load" in answer.json()["message"]
    # Nothing is left registered; registering again tries again (a fresh budget).
    assert server.management.get("/models/bad").status_code == 404
    before = failed_loads(server)
    again = server.management.post("/models", params={"url": "bad-1.0.podium"})
    assert again.status_code == 503
    assert failed_loads(server) == before + 2
    # In the background it stays listed as failed, and scaling gives it a fresh budget.
    started = server.management.post(
        "/models", params={"url": "bad-1.0.podium", "synchronous": "false"}
    )
    assert started.status_code == 202
    wait_for(lambda: server.management.get("/models/bad").json()[0]["status"] == "failed")
    before = failed_loads(server)
    scaled = server.management.put("/models/bad", params={"min_worker": 1})
    assert scaled.status_code == 503
    assert "refuses to load" in scaled.json()["message"]
    assert failed_loads(server) == before + 2
    # A failed version can be registered again (it is replaced, not a conflict).
    replaced = server.management.post("/models", params={"url": "bad-1.0.podium"})
    assert replaced.status_code == 503
    assert server.post("/predictions/good", {"x": 1}).status_code == 200


def test_a_handler_outside_the_archive_fails_registration(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: object
) -> None:
    make_archive("good")
    server = start_server("--max-load-failures", "1")
    make_archive("missing", handler="echo.py:NoSuchHandler")
    answer = server.management.post("/models", params={"url": "missing-1.0.podium"})
    assert answer.status_code == 503
    assert "NoSuchHandler" in answer.json()["message"]
    assert server.http.get("/ping").status_code == 200
