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

from podium.types import Answer

HEADER = struct.Struct(">I")
MAX_FRAME = 2**31 - 1


class Load(NamedTuple):
    """Front end → worker, once: what to load."""

    model_dir: str
    worker_id: int
    debug: bool
    quiet: bool = False
    """Log no traceback if the load fails (the front end logs one line per failure)."""


class Batch(NamedTuple):
    """Front end → worker: one batch of requests, each a plain (codec tag, payload) tuple:
    an ``InferenceRequest`` without its class, which would cost a Python call to rebuild."""

    batch_id: int
    requests: list[tuple[str, Any]]


class Stop(NamedTuple):
    """Front end → worker: finish and exit."""


class Ready(NamedTuple):
    """Worker → front end: the handler initialized; what the model takes and answers
    (``Handler.signature`` or the manifest's, in the manifest's format), if known."""

    pid: int
    signature: dict[str, Any] | None = None


class LoadFailed(NamedTuple):
    """Worker → front end: the handler could not initialize."""

    message: str


class Result(NamedTuple):
    """Worker → front end: one answer per request of a batch, in order."""

    batch_id: int
    responses: list[Answer]


class Partial(NamedTuple):
    """Worker → front end: one part of a streamed answer, sent while the batch still runs
    (``position`` is the request's place in the batch message). The batch's ``Result`` still
    follows and carries each request's last part."""

    batch_id: int
    position: int
    response: Answer


class HandlerMetrics(NamedTuple):
    """Worker → front end, now and then: the custom metrics its handler emitted so far,
    each as (name, dimensions "a=1,b=2", unit, value, is_counter)."""

    values: list[tuple[str, str, str, float, bool]]


Message = Load | Batch | Stop | Ready | LoadFailed | Result | Partial | HandlerMetrics

# Batches and results cross the wire as plain tuples tagged with these: pickling a named
# tuple stores its class and rebuilds it through Python code, several times the cost.
BATCH = 1
RESULT = 2


def encode(message: Message) -> bytes:
    packed: object = message
    if type(message) is Batch:
        packed = (BATCH, message.batch_id, message.requests)
    elif type(message) is Result:
        packed = (RESULT, message.batch_id, [tuple(r) for r in message.responses])
    data = pickle.dumps(packed, protocol=5)
    return HEADER.pack(len(data)) + data


def decode(data: bytes | bytearray | memoryview) -> Message:
    message = pickle.loads(data)
    if type(message) is tuple:
        tag, batch_id, items = message
        return Batch(batch_id, items) if tag == BATCH else Result(batch_id, items)
    unpacked: Message = message
    return unpacked


class FrameReader:
    """Splits a byte stream into decoded messages (for the asyncio side)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | memoryview) -> list[Message]:
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
        # Reused: a fresh 1 MiB buffer per recv costs an mmap/munmap pair every batch.
        self._chunk = bytearray(self.RECEIVE_SIZE)
        self._view = memoryview(self._chunk)

    def send(self, message: Message) -> None:
        self.sock.sendall(encode(message))

    def receive(self) -> Message | None:
        """The next message; ``None`` when the other end closed."""
        while not self._ready:
            count = self.sock.recv_into(self._chunk)
            if not count:
                return None
            self._ready.extend(self._reader.feed(self._view[:count]))
        return self._ready.popleft()
