"""The Python client against a real server: answers, and errors as PodiumError classes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podium import Client, InvalidInput, PodiumError
from podium.errors import HandlerError, ModelNotFound, from_code
from tests.conftest import MakeArchive, StartServer


def test_client_round_trip_and_errors(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("echo")
    server = start_server()
    with Client(server.url) as client:
        assert client.ping()
        assert client.predict("echo", {"a": 1})["echo"] == {"a": 1}
        assert client.predict("echo", b"\x07", version="1.0")["echo"] == "07"
        with pytest.raises(ModelNotFound):
            client.predict("ghost", 1)
        with pytest.raises(InvalidInput, match="too short"):
            client.predict("echo", {"invalid": "too short"})
        with pytest.raises(HandlerError, match="boom"):
            client.predict("echo", {"raise": "boom"})


def test_client_and_cli_stream_a_streamed_answer(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("echo")
    server = start_server()
    with Client(server.url) as client:
        for events in (False, True):  # NDJSON, then server-sent events
            parts = list(client.stream("echo", {"stream": 2}, events=events))
            assert parts[:2] == [{"part": 0}, {"part": 1}]
            assert parts[2]["echo"] == {"stream": 2} and len(parts) == 3
        # An answer that is not streamed is one part.
        [whole] = client.stream("echo", {"a": 1})
        assert whole["echo"] == {"a": 1}
        with pytest.raises(ModelNotFound):
            list(client.stream("ghost", 1))
    printed = subprocess.run(
        [sys.executable, "-m", "podium.cli", "predict", "echo", "--stream",
         "--data", '{"stream": 1}', "--url", server.url],
        capture_output=True, check=True,
    )  # fmt: skip
    lines = printed.stdout.decode().splitlines()
    assert lines[0] == '{"part":0}' and json.loads(lines[1])["echo"] == {"stream": 1}


def test_unknown_error_codes_fall_back() -> None:
    assert isinstance(from_code("NoSuchThing", "m"), HandlerError)
    assert from_code("ModelNotFound", "m").status == 404
    assert isinstance(from_code("QueueFull", "m"), PodiumError)
