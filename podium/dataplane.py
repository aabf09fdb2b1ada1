"""The protocol-free request path: payload → model version → batcher → answer.

Routes parse HTTP and call ``DataPlane.infer``; nothing here knows about ASGI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from podium import wire
from podium.batcher import Pending
from podium.errors import ClientDisconnected, InvalidRequest, RequestTimeout, ShuttingDown
from podium.registry import Registry


def parse_payload(body: bytes, content_type: str) -> Any:
    """JSON bodies become Python values; any other body stays ``bytes``.

    A body without a JSON content type is still read as JSON when it parses (``curl -d``
    sends form encoding by default), else it is passed on as bytes.
    """
    if "json" in content_type:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidRequest(f"Body is not valid JSON: {error}") from None
    if content_type in ("", "application/x-www-form-urlencoded") and body[:1] in b'{["':
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return body


class DataPlane:
    """Finds the version that serves a request and waits for its answer."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.draining = False

    async def infer(
        self,
        model: str,
        version: str | None,
        payload: Any,
        *,
        cancel_on: Callable[[], Awaitable[Any]] | None = None,
    ) -> wire.Response:
        """Queue ``payload`` for ``model`` and wait for the worker's answer.

        ``cancel_on`` optionally waits for the client to go away: when it returns first,
        the request is withdrawn and never reaches a worker.
        """
        if self.draining:
            raise ShuttingDown()
        served = self.registry.resolve(model, version)
        item = served.batcher.submit(payload)
        return await self.wait(item, cancel_on)

    async def wait(
        self, item: Pending, cancel_on: Callable[[], Awaitable[Any]] | None
    ) -> wire.Response:
        loop = asyncio.get_running_loop()
        future = item.future
        timer = loop.call_at(item.deadline, _expire, future)
        watcher = None
        if cancel_on is not None:
            watcher = asyncio.ensure_future(cancel_on())
            watcher.add_done_callback(lambda _: _fail(future, ClientDisconnected()))
        try:
            return await future
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()


def _expire(future: asyncio.Future[wire.Response]) -> None:
    _fail(future, RequestTimeout())


def _fail(future: asyncio.Future[wire.Response], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
