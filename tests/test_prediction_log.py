"""The prediction log: a real server records what it was sent and answered, ``podium log``
and the management API read it back, sampling and disk errors, and the bounded queue."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from podium.observability.predictions import PredictionLog, read_predictions
from podium.protocols.v2 import Tensor, V2Request
from podium.types import InferenceRequest
from tests.conftest import MakeArchive, Server, StartServer


def wait_for_entries(server: Server, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The management API's entries, once the writer has written ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        answer = server.management.get("/models/echo/predictions", params={"limit": 100})
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_every_request_is_recorded(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    path = tmp_path / "predictions.sqlite"
    server = start_server("--prediction-log", str(path), "--prediction-log-sampling", "1.0")
    sent = [{"n": n, "text": f"request {n}"} for n in range(6)]
    answers = [server.post("/predictions/echo", body) for body in sent]
    assert [answer.status_code for answer in answers] == [200] * 6

    entries = wait_for_entries(server, 6)
    assert len(entries) == 6
    assert [orjson.loads(entry["input"]) for entry in entries] == sent
    assert [entry["output"] for entry in entries] == [answer.text for answer in answers]
    assert {(e["model"], e["version"], e["protocol"], e["status"]) for e in entries} == {
        ("echo", "1.0", "json", 200)
    }
    assert all(entry["latency"] > 0 for entry in entries)
    last = server.management.get("/models/echo/predictions", params={"limit": 2}).json()
    assert last == entries[-2:]
    assert server.management.get("/models/nothing/predictions").status_code == 404
    assert "podium_prediction_log_dropped_total 0.0" in server.http.get("/metrics").text
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)

    command = ["log", "echo", "--tail", "3", "--json", "--file", str(path)]
    printed = subprocess.run(
        [sys.executable, "-m", "podium.cli", *command],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    lines = [orjson.loads(line) for line in printed]
    assert [line["input"] for line in lines] == sent[-3:]
    assert [line["output"] for line in lines] == [answer.json() for answer in answers[-3:]]

    assert server.stop() == 0
    assert len(read_predictions(path, "echo", 100)) == 6


def test_sampling_zero_writes_nothing(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    path = tmp_path / "predictions.sqlite"
    server = start_server("--prediction-log", str(path), "--prediction-log-sampling", "0")
    for n in range(5):
        assert server.post("/predictions/echo", {"n": n}).status_code == 200
    assert server.stop() == 0
    assert read_predictions(path, "echo", 100) == []


def test_unwritable_log_keeps_serving(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # tests run as root: chmod would not stop sqlite
    server = start_server("--prediction-log", str(blocker / "predictions.sqlite"))
    for n in range(5):
        assert server.post("/predictions/echo", {"n": n}).status_code == 200
    assert server.management.get("/models/echo/predictions").json() == []
    assert server.stop() == 0
    errors = [line for line in server.log.read_text().splitlines() if "prediction log" in line]
    assert len(errors) == 1, errors


def test_route_says_when_the_log_is_off(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    answer = server.management.get("/models/echo/predictions")
    assert answer.status_code == 404
    assert "prediction log is off" in answer.text


class Version(NamedTuple):
    name: str
    version: str


class Outcome(NamedTuple):
    served: Version
    status: int
    latency: float | None
    request: InferenceRequest | None
    body: bytes | None


def outcome(payload: Any, codec: str = "json", body: bytes | None = b"{}") -> Outcome:
    return Outcome(Version("m", "1"), 200, 0.01, InferenceRequest(codec, payload), body)


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    predictions = PredictionLog(tmp_path / "log.sqlite", capacity=2)  # writer not started
    for n in range(5):
        predictions.observe(outcome({"n": n}))
    assert predictions.dropped == 3
    predictions.start()
    predictions.close()
    entries = read_predictions(tmp_path / "log.sqlite", "m", 10)
    assert [orjson.loads(entry["input"]) for entry in entries] == [{"n": 0}, {"n": 1}]


def test_inputs_by_protocol(tmp_path: Path) -> None:
    predictions = PredictionLog(tmp_path / "log.sqlite")
    small = Tensor("x", "FP32", (1, 2), np.array([[0.5, 1.0]], dtype=np.float32))
    large = Tensor("big", "INT64", (100,), np.arange(100))
    predictions.observe(outcome(V2Request("id", (small, large)), "v2"))
    predictions.observe(outcome(b"\x00\x01", body=b"\xff\xfe"))
    predictions.observe(outcome(b"x" * 10_000))
    predictions.observe(outcome((b"a,b", "text/csv", (), ""), "torchserve"))
    predictions.observe(outcome(None, body=None)._replace(request=None, status=503))
    predictions.start()
    predictions.close()
    entries = read_predictions(tmp_path / "log.sqlite", "m", 10)
    assert [(e["input"] and orjson.loads(e["input"])) for e in entries[:3]] == [
        [
            {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1.0]},
            {"name": "big", "datatype": "INT64", "shape": [100]},
        ],
        {"bytes": 2, "base64": "AAE="},
        {"bytes": 10_000},
    ]
    assert entries[1]["output"] == '{"bytes":2}'
    assert entries[3]["input"] == "a,b"
    assert (entries[4]["status"], entries[4]["input"], entries[4]["output"]) == (503, None, None)


def test_rotation_by_size(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    (tmp_path / "log.sqlite.1").write_text("an older log")
    predictions = PredictionLog(path, max_bytes=1)
    predictions.start()
    predictions.observe(outcome({"first": True}))
    deadline = time.monotonic() + 30
    while not path.with_name("log.sqlite.1").read_bytes().startswith(b"SQLite"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    predictions.observe(outcome({"second": True}))
    predictions.close()
    assert [e["input"] for e in read_predictions(path.with_name("log.sqlite.1"), "m")] == [
        '{"first":true}'
    ]
    assert [e["input"] for e in read_predictions(path, "m")] == ['{"second":true}']
