"""Reading a streamed answer back into its parts, for the clients.

A native stream is newline-delimited JSON (``application/x-ndjson``) or, when the client
asked for it, server-sent events (``text/event-stream``, read with ``httpx-sse``): either
way each part is one JSON value. An answer that was not streamed is one part; a raw stream
(a TorchServe handler's) yields its chunks as they came.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"


def kind_of(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(NDJSON):
        return "ndjson"
    if content_type.startswith(EVENT_STREAM):
        return "sse"
    if content_type.startswith("application/json"):
        return "json"
    return "raw"


def parts(response: httpx.Response) -> Iterator[Any]:
    """The parts of a streamed ``response`` as they arrive."""
    kind = kind_of(response)
    if kind == "sse":
        for event in EventSource(response).iter_sse():
            yield orjson.loads(event.data)
    elif kind == "ndjson":
        yield from _lines(response.iter_bytes())
    elif kind == "json":
        yield orjson.loads(response.read())
    else:
        yield from response.iter_bytes()


async def aparts(response: httpx.Response) -> AsyncIterator[Any]:
    """``parts`` for an ``httpx.AsyncClient`` response."""
    kind = kind_of(response)
    if kind == "sse":
        async for event in EventSource(response).aiter_sse():
            yield orjson.loads(event.data)
    elif kind == "ndjson":
        lines = Lines()
        async for chunk in response.aiter_bytes():
            for value in lines.feed(chunk):
                yield value
        for value in lines.end():
            yield value
    elif kind == "json":
        yield orjson.loads(await response.aread())
    else:
        async for chunk in response.aiter_bytes():
            yield chunk


def _lines(chunks: Iterator[bytes]) -> Iterator[Any]:
    lines = Lines()
    for chunk in chunks:
        yield from lines.feed(chunk)
    yield from lines.end()


class Lines:
    """Splits NDJSON chunks, however they were cut, into the JSON values of whole lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[Any]:
        *whole, self.pending = (self.pending + chunk).split(b"\n")
        return [orjson.loads(line) for line in whole if line.strip()]

    def end(self) -> list[Any]:
        """A last line without its newline (a stream cut short raises while parsing it)."""
        rest, self.pending = self.pending, b""
        return [orjson.loads(rest)] if rest.strip() else []
