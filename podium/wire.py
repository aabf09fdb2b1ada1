"""The wire between the front end and a worker: length-prefixed pickle frames.

Each end holds one end of a ``socketpair`` (a Unix domain socket with no name on disk, so
no other user can connect to it). A frame is a 4-byte big-endian length and a pickle
(protocol 5) of one message below. Client bytes travel inside messages as ``bytes``
values; they are never unpickled themselves.
"""

from __future__ import annotations

import pickle
import socket
import struct
from collections import deque
from typing import Any, NamedTuple

HEADER = struct.Struct(">I")
MAX_FRAME = 2**31 - 1


class Load(NamedTuple):
    """Front end → worker, once: what to load."""

    model_dir: str
    worker_id: int
    debug: bool


class Batch(NamedTuple):
    """Front end → worker: one batch of request payloads (parsed JSON or bytes)."""

    batch_id: int
    payloads: list[Any]


class Stop(NamedTuple):
    """Front end → worker: finish and exit."""


class Ready(NamedTuple):
    """Worker → front end: the handler initialized."""

    pid: int


class LoadFailed(NamedTuple):
    """Worker → front end: the handler could not initialize."""

    message: str


class Response(NamedTuple):
    """One answer: HTTP status, content type and encoded body."""

    status: int
    content_type: str
    body: bytes


class Result(NamedTuple):
    """Worker → front end: one ``Response`` per payload of a batch, in order."""

    batch_id: int
    responses: list[Response]


Message = Load | Batch | Stop | Ready | LoadFailed | Result


def encode(message: Message) -> bytes:
    data = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(data)) + data


def decode(data: bytes | bytearray | memoryview) -> Message:
    message: Message = pickle.loads(data)
    return message


class FrameReader:
    """Splits a byte stream into decoded messages (for the asyncio side)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, offset)
            end = offset + HEADER.size + length
            if len(buffer) < end:
                break
            messages.append(decode(buffer[offset + HEADER.size : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return messages


class Channel:
    """The worker's end: blocking send and receive of whole messages.

    Reads are buffered (one ``recv`` usually brings a whole frame, header included), so a
    batch costs one system call each way.
    """

    RECEIVE_SIZE = 1024 * 1024

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = FrameReader()
        self._ready: deque[Message] = deque()

    def send(self, message: Message) -> None:
        self.sock.sendall(encode(message))

    def receive(self) -> Message | None:
        """The next message; ``None`` when the other end closed."""
        while not self._ready:
            data = self.sock.recv(self.RECEIVE_SIZE)
            if not data:
                return None
            self._ready.extend(self._reader.feed(data))
        return self._ready.popleft()
