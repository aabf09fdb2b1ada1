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


def send(sock: socket.socket, message: Message) -> None:
    sock.sendall(encode(message))


def receive(sock: socket.socket) -> Message | None:
    """Read one message; ``None`` when the other end closed."""
    header = _read_exactly(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    body = _read_exactly(sock, length)
    if body is None:
        return None
    return decode(body)


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            return None
        received += count
    return buffer


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
