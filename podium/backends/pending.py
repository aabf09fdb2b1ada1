"""What a backend hands back to the data plane for one request: a ``Pending`` answer, which
becomes a ``Stream`` when the handler streams its answer in parts."""

from __future__ import annotations

import asyncio
import time

from podium.errors import HandlerError
from podium.types import Answer, InferenceRequest


class Stream:
    """A streamed answer: the status, content type and headers of its first part, then the
    bodies of every part as the worker sends them, the last one from the batch's result.
    ``part_type`` is the content type of the part ``next`` returned last (a front end that
    frames parts, as NDJSON or server-sent events, reads it)."""

    __slots__ = ("_parts", "content_type", "headers", "latency", "part_type", "request", "status")

    def __init__(self, first: Answer) -> None:
        self.status, self.content_type, body, self.headers = first
        self.latency: float | None = None
        """Seconds from the request's arrival to the first part (set by the data plane)."""
        self.request: InferenceRequest | None = None
        """The request it answers (set by the data plane, for its observers)."""
        self.part_type = self.content_type
        self._parts: asyncio.Queue[tuple[str, bytes] | BaseException | None] = asyncio.Queue()
        self._parts.put_nowait((self.content_type, body))

    def add(self, part: Answer) -> None:
        self._parts.put_nowait((part[1], part[2]))

    def end(self, last: Answer | BaseException) -> None:
        """The last part (the handler's return value), or the error that cut the stream."""
        if isinstance(last, BaseException):
            self._parts.put_nowait(last)
        elif last[0] >= 400 and last[0] != self.status:
            # The status went out with the first part: an error now can only cut the stream.
            self._parts.put_nowait(HandlerError(last[2].decode("utf-8", "replace")[:1000]))
        else:
            self._parts.put_nowait((last[1], last[2]))
        self._parts.put_nowait(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next part's body, or None after the last; raises what cut the stream, and
        ``TimeoutError`` when no part comes within ``timeout`` seconds."""
        part = await asyncio.wait_for(self._parts.get(), timeout)
        if isinstance(part, BaseException):
            raise part
        if part is None:
            return None
        self.part_type, body = part
        return body


class Pending:
    """One request waiting for its answer: a whole one, or a ``Stream`` once a first part
    of a streamed answer has come."""

    __slots__ = ("arrival", "deadline", "future", "request", "stream")

    def __init__(
        self,
        request: InferenceRequest,
        future: asyncio.Future[Answer | Stream],
        timeout: float,
    ) -> None:
        self.request = request
        self.future = future
        self.arrival = time.monotonic()
        self.deadline = self.arrival + timeout
        self.stream: Stream | None = None

    def part(self, answer: Answer) -> None:
        """A part of a streamed answer came from the worker."""
        if self.stream is not None:
            self.stream.add(answer)
        elif not self.future.done():  # else the request timed out or its client left
            self.stream = Stream(answer)
            self.future.set_result(self.stream)
