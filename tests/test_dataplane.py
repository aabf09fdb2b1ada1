"""The protocol-free request path in-process: body parsing limits, and a request that
cannot cross the wire to a real worker process failing alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from podium.backends.pending import Stream
from podium.core.dataplane import DataPlane
from podium.core.observers import Observation
from podium.core.registry import Registry
from podium.errors import InvalidRequest
from podium.protocols.native import MAX_JSON_DEPTH, parse_payload
from podium.settings import Settings
from podium.types import InferenceRequest
from tests.conftest import MakeArchive


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_up_to_the_limit_parses() -> None:
    assert parse_payload(nested(MAX_JSON_DEPTH), "application/json") is not None
    with pytest.raises(InvalidRequest, match="nested deeper than 64"):
        parse_payload(nested(MAX_JSON_DEPTH + 1), "application/json")
    # Objects count as levels too, and so does a deep branch beside shallow ones.
    body = b'{"a": [1, 2, 3], "b": ' + b'{"c": ' * 70 + b"1" + b"}" * 70 + b"}"
    with pytest.raises(InvalidRequest, match="nested deeper"):
        parse_payload(body, "application/json")


def test_wide_arrays_are_not_deep() -> None:
    wide = orjson.dumps([[float(i)] * 50 for i in range(200)])
    assert len(parse_payload(wide, "application/json")) == 200


def test_big_integers_keep_every_digit() -> None:
    assert parse_payload(b"[18446744073709551616, 1.5]", "application/json") == [
        2**64,
        1.5,
    ]
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_payload(b"[12345678901234567890, NaN]", "application/json")


def test_a_form_body_too_deep_is_refused_not_passed_as_bytes() -> None:
    with pytest.raises(InvalidRequest):
        parse_payload(nested(200), "")
    assert parse_payload(b"[not json", "") == b"[not json"


def test_a_request_that_cannot_reach_its_worker_fails_alone(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    make_archive("echo", batch_size=8)

    async def run() -> list[Any]:
        settings = Settings(model_store=tmp_path / "store", work_dir=tmp_path / "work")
        registry = Registry(settings)
        assert await registry.load_store() == []
        plane = DataPlane(registry)
        served = plane.resolve("echo", None)
        deep: list[Any] = []
        for _ in range(5000):  # past pickle's recursion limit
            deep = [deep]
        try:
            together = await asyncio.gather(
                plane.infer(served, native({"i": 1})),
                plane.infer(served, native(deep)),
                plane.infer(served, native({"i": 2})),
                return_exceptions=True,
            )
            # The worker was not left busy: it answers the next request.
            after = await asyncio.wait_for(plane.infer(served, native({"i": 3})), 10)
            return [*together, after]
        finally:
            await registry.stop()

    first, refused, second, after = asyncio.run(run())
    assert isinstance(refused, InvalidRequest)
    assert "cannot be passed to a worker" in refused.message
    for answer, index in ((first, 1), (second, 2), (after, 3)):
        assert not isinstance(answer, BaseException), answer
        assert answer[0] == 200
        assert orjson.loads(answer[2])["echo"] == {"i": index}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def observe(self, observation: Observation) -> None:
        self.seen.append(observation)


class Broken:
    def observe(self, observation: Observation) -> None:
        raise RuntimeError("this observer is broken")


def test_observers_see_every_outcome_and_a_broken_one_harms_nothing(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    make_archive("echo", batch_size=8)

    async def run() -> tuple[Recorder, list[Any]]:
        settings = Settings(model_store=tmp_path / "store", work_dir=tmp_path / "work")
        registry = Registry(settings)
        assert await registry.load_store() == []
        plane = DataPlane(registry)
        recorder = Recorder()
        plane.observers += [Broken(), recorder]
        served = plane.resolve("echo", None)
        try:
            answers: list[Any] = list(
                await asyncio.gather(
                    plane.infer(served, native({"i": 1})),
                    plane.infer(served, native({"raise": "no"})),
                    return_exceptions=True,
                )
            )
            stream = await plane.infer(served, native({"stream": 2}))
            assert isinstance(stream, Stream)
            answers.append(await plane.whole(served, stream))
        finally:
            await registry.stop()
        return recorder, answers

    recorder, answers = asyncio.run(run())
    assert [answer[0] for answer in answers] == [200, 500, 200]
    by_payload = {repr(seen.request.payload): seen for seen in recorder.seen if seen.request}
    ok = by_payload["{'i': 1}"]
    assert (ok.status, ok.served.name) == (200, "echo")
    assert ok.latency is not None and ok.latency > 0
    assert ok.body is not None and orjson.loads(ok.body)["echo"] == {"i": 1}
    assert by_payload["{'raise': 'no'}"].status == 500
    streamed = by_payload["{'stream': 2}"]
    assert (streamed.status, streamed.body) == (200, None)
    assert streamed.latency is not None
    assert len(recorder.seen) == 3


def native(payload: Any) -> InferenceRequest:
    return InferenceRequest("json", payload)
