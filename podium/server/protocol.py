"""Uvicorn's httptools protocol with a cap on the request head.

Uvicorn bounds nothing before the body: a client can stream megabytes of request line
and headers and the server buffers them all. This protocol counts the bytes received
while a request head is incomplete, and once they pass ``MAX_HEAD_BYTES`` answers 431
and closes the connection. Bodies are bounded per request by the inference route.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024

_BODY = b'{"code":431,"type":"InvalidRequest","message":"Request line and headers are too large"}'
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses request heads over ``MAX_HEAD_BYTES``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_bytes = 0
        self.in_head = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # Only a head still incomplete after this chunk counts: a chunk that finished
        # the head may carry body bytes too.
        if self.in_head and self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # Whatever follows on this connection is the next request's head.
        self.in_head = True
        self.head_bytes = 0
        super().on_message_complete()
