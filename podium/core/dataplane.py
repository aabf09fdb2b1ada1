"""The protocol-free request path: typed request → model version → backend → answer.

Front ends parse their transport, build an ``InferenceRequest`` with their codec
(``podium.protocols``) and call ``DataPlane.infer``; nothing here knows about HTTP or gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from podium.backends.pending import Pending, Stream
from podium.core.observers import CountingObserver, Observation, Observer
from podium.core.registry import ModelVersion, Registry
from podium.errors import (
    ClientDisconnected,
    PodiumError,
    RequestTimeout,
    ResponseTooLarge,
    ShuttingDown,
)
from podium.types import Answer, InferenceRequest

log = logging.getLogger("podium.dataplane")

WATCH_AFTER = 0.05
"""Seconds a request waits before the server starts watching for its client leaving."""


class DataPlane:
    """Finds the version that serves a request and waits for its answer."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.max_response_bytes = registry.settings.max_response_bytes
        self.draining = False
        self.observers: list[Observer] = [CountingObserver()]
        """Told each request's outcome (``podium.core.observers``); append to watch."""

    def observe(
        self,
        served: ModelVersion,
        status: int,
        latency: float | None = None,
        request: InferenceRequest | None = None,
        body: bytes | None = None,
    ) -> None:
        """Tell every observer how a request ended; one that fails is logged, not raised."""
        observation = Observation(served, status, latency, request, body)
        for observer in self.observers:
            try:
                observer.observe(observation)
            except Exception:
                log.exception("observer %r failed", observer)

    def resolve(self, model: str, version: str | None) -> ModelVersion:
        """The version that will serve a request (404 if none, 503 while draining)."""
        if self.draining:
            raise ShuttingDown()
        return self.registry.resolve(model, version)

    def admit(self, served: ModelVersion) -> None:
        """Refuse now (counted) if ``served`` would refuse a request: before its body is
        read, so that under overload a refusal costs as little as possible."""
        try:
            served.backend.admit()
        except PodiumError as error:
            self.observe(served, error.status)
            raise

    async def infer(
        self,
        served: ModelVersion,
        request: InferenceRequest,
        *,
        until_gone: Callable[[], Awaitable[Any]] | None = None,
    ) -> Answer | Stream:
        """Queue ``request`` for a version and wait for the worker's answer, or for the
        first part of it when the handler streams (``Stream``).

        ``until_gone`` optionally waits for the client to go away: when it returns first,
        the request is withdrawn and never reaches a worker.
        """
        try:
            item = served.backend.submit(request)
            answer = await self.wait(item, until_gone)
            if isinstance(answer, Stream):
                # Observed when it ends (``parts``), with the latency to this first part.
                answer.latency = time.monotonic() - item.arrival
                answer.request = request
                return answer
            if len(answer[2]) > self.max_response_bytes:
                raise ResponseTooLarge(
                    f"The model's answer of {len(answer[2])} bytes is over the "
                    f"{self.max_response_bytes} byte limit"
                )
        except PodiumError as error:
            self.observe(served, error.status, None, request)
            raise
        self.observe(served, answer[0], time.monotonic() - item.arrival, request, answer[2])
        return answer

    async def whole(self, served: ModelVersion, answer: Answer | Stream) -> Answer:
        """An answer in one piece: a stream's parts joined (for callers that cannot stream)."""
        if not isinstance(answer, Stream):
            return answer
        parts = [part async for part in self.parts(served, answer)]
        return answer.status, answer.content_type, b"".join(parts), answer.headers

    async def parts(self, served: ModelVersion, stream: Stream) -> AsyncIterator[bytes]:
        """A stream's part bodies as they come. Each must come within the version's request
        timeout, and together they stay under the response size limit; else the stream is
        cut with ``RequestTimeout`` or ``ResponseTooLarge``. The request is counted once it
        ends: with the stream's status, or the error that cut it."""
        size = 0
        try:
            while True:
                try:
                    part = await stream.next(served.backend.request_timeout)
                except TimeoutError:
                    raise RequestTimeout() from None
                if part is None:
                    break
                size += len(part)
                if size > self.max_response_bytes:
                    raise ResponseTooLarge(
                        f"The model's streamed answer is over the {self.max_response_bytes} "
                        "byte limit"
                    )
                yield part
        except PodiumError as error:
            self.observe(served, error.status, stream.latency, stream.request)
            raise
        self.observe(served, stream.status, stream.latency, stream.request)

    async def wait(
        self, item: Pending, until_gone: Callable[[], Awaitable[Any]] | None
    ) -> Answer | Stream:
        guard = Guard(item, until_gone)
        try:
            return await item.future
        finally:
            guard.close()


class Guard:
    """Enforces one request's deadline, and withdraws it if its client goes away.

    Watching for a disconnect takes a task per request, which costs more than the rest of
    the queueing together; so the watch starts only once a request has waited
    ``WATCH_AFTER`` seconds. Requests answered sooner never pay for it, and those stuck
    in a long queue, where dropping abandoned work matters, are watched.
    """

    __slots__ = ("deadline", "future", "timer", "until_gone", "watcher")

    def __init__(self, item: Pending, until_gone: Callable[[], Awaitable[Any]] | None) -> None:
        self.future = item.future
        self.deadline = item.deadline
        self.until_gone = until_gone
        self.watcher: asyncio.Future[Any] | None = None
        first = min(self.deadline, item.arrival + WATCH_AFTER) if until_gone else self.deadline
        self.timer = asyncio.get_running_loop().call_at(first, self.check)

    def check(self) -> None:
        if self.future.done():
            return
        loop = asyncio.get_running_loop()
        if time.monotonic() >= self.deadline:
            self.future.set_exception(RequestTimeout())
            return
        if self.until_gone is not None and self.watcher is None:
            self.watcher = asyncio.ensure_future(self.until_gone())
            self.watcher.add_done_callback(self._gone)
        self.timer = loop.call_at(self.deadline, self.check)

    def _gone(self, watcher: asyncio.Future[Any]) -> None:
        if not watcher.cancelled() and not self.future.done():
            self.future.set_exception(ClientDisconnected())

    def close(self) -> None:
        self.timer.cancel()
        if self.watcher is not None:
            self.watcher.cancel()
