"""Uvicorn's httptools protocol with limits on what a client may send, and how slowly.

Uvicorn bounds nothing before the application sees a request: a client can stream
megabytes of request line and headers (buffered in full), or send them, or the body, a
byte at a time and hold a connection forever (slowloris). This protocol

- counts the bytes of a request head still incomplete, and past ``MAX_HEAD_BYTES``
  answers 431 and closes the connection;
- notes when each connection started sending a head or a body; one sweep per
  ``client_timeout / 4`` (per server, not a timer per request) closes the connections
  that have been at it longer than ``client_timeout``, answering 408;
- asks ``refusal`` (``podium.frontends.rest.admission``) once a head is parsed, and writes its
  answer at once when it has one (a model's queue is full), without an ASGI cycle.

Bodies are bounded in size per request by the inference route.
"""

from __future__ import annotations

import asyncio
import time
import typing
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from podium.frontends.rest.admission import Refusal

MAX_HEAD_BYTES = 64 * 1024


def _answer(status: bytes, message: bytes) -> bytes:
    body = b'{"code":%s,"type":"InvalidRequest","message":"%s"}' % (status[:3], message)
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        % (
            status,
            len(body),
        )
        + b"connection: close\r\n\r\n"
        + body
    )


HEAD_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"Request head too large")
TOO_SLOW = _answer(b"408 Request Timeout", b"The request was sent too slowly")


class _Answered:
    """Stands for the cycle of a request answered by the protocol itself."""

    response_complete = True


ANSWERED = typing.cast(RequestResponseCycle, _Answered())


class HeadTooLarge(Exception):
    """Raised inside the parser's callbacks to stop a head over ``MAX_HEAD_BYTES``."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses oversized heads and too slow clients."""

    client_timeout: ClassVar[float] = 30.0
    refusal: ClassVar[Refusal | None] = None
    """Asked once per request head: the whole answer to refuse it with at once (a model's
    queue is full), or None (see ``podium.frontends.rest.admission``)."""
    _sweeper: ClassVar[asyncio.Task[None] | None] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_bytes = 0
        self.large_chunk = False
        self.head_too_large = False
        self.in_head = True
        self.refused = False
        self.sending_since: float | None = time.monotonic()
        super().connection_made(transport)
        cls = type(self)
        if cls._sweeper is None or cls._sweeper.done():
            cls._sweeper = asyncio.ensure_future(cls._sweep(self.connections))

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        # A chunk this large may hold a whole head over the limit, which the check after
        # parsing would miss (the head is complete by then): on_headers_complete measures.
        self.large_chunk = len(data) > MAX_HEAD_BYTES
        super().data_received(data)
        # Only a head still incomplete after this chunk counts: a chunk that finished
        # the head may carry body bytes too.
        if self.in_head and self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        self.sending_since = time.monotonic()
        # A refused request armed the keep-alive timer; this connection is busy again.
        self._unset_keepalive_if_required()
        super().on_message_begin()

    def _head_size(self) -> int:
        """The parsed head's size: request target and headers, with their separators."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        if self.head_too_large:
            if not self.transport.is_closing():
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.large_chunk and self._head_size() > MAX_HEAD_BYTES:
            # Stops the parser; uvicorn then calls send_400_response, answered 431 above.
            self.head_too_large = True
            raise HeadTooLarge()
        refusal = type(self).refusal
        if (
            refusal is not None
            and (self.cycle is None or self.cycle.response_complete)
            and self.parser.should_keep_alive()
            and self.parser.get_http_version() == "1.1"
        ):
            port = (self.server or ("", 0))[1] or 0
            refused = refusal(self.parser.get_method(), self.url, self.headers, port)
            if refused is not None:
                # Answered here: no ASGI cycle; the body, if any, is read and dropped. The
                # connection is read again once the model has room (see admission).
                answer, hold = refused
                self.refused = True
                # uvicorn drops the body and the end of a request whose cycle is complete.
                self.cycle = ANSWERED
                self.transport.write(answer)
                self.server_state.total_requests += 1
                if hold is not None:
                    self.flow.pause_reading()
                    hold(self._resume)
                return
        super().on_headers_complete()

    def _resume(self) -> None:
        if not self.transport.is_closing():
            self.flow.resume_reading()

    def on_message_complete(self) -> None:
        # Whatever follows on this connection is the next request's head.
        self.in_head = True
        self.head_bytes = 0
        self.sending_since = None
        if self.refused:
            self.refused = False
            if not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
            return
        super().on_message_complete()

    @classmethod
    async def _sweep(cls, connections: set[Any]) -> None:
        while True:
            await asyncio.sleep(max(0.05, cls.client_timeout / 4))
            late = time.monotonic() - cls.client_timeout
            for connection in list(connections):
                # Set from connect to the end of each request body; None while the
                # request runs and while the connection idles between requests.
                started = getattr(connection, "sending_since", None)
                transport = getattr(connection, "transport", None)
                if started is None or started >= late or transport is None:
                    continue
                if not transport.is_closing():
                    transport.write(TOO_SLOW)
                    transport.close()


def limited_protocol(
    client_timeout: float, refusal: Refusal | None = None
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class with this server's client timeout and edge refusal."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"client_timeout": client_timeout, "refusal": refusal, "_sweeper": None},
    )
