"""How a streamed answer's parts are framed on the wire: newline-delimited JSON by default,
server-sent events when the client asks for them.

    application/x-ndjson   one JSON value per line (the default)
    text/event-stream      ``data: <json>`` events, one per part (``Accept: text/event-stream``)

Each part is one JSON value whatever the handler sent: a JSON part as it is (compact JSON
has no raw newline), text or bytes as a JSON string (bytes decoded as UTF-8, invalid
sequences replaced). Any standard NDJSON or SSE reader splits the stream back into the
parts, however a proxy re-chunks it. A model served by a TorchServe handler keeps
TorchServe's raw chunks, which its clients already read.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"

Framing = Callable[[str, bytes], bytes]
"""(a part's content type, its body) → the bytes that go on the wire."""


def framing_for(accept: str) -> tuple[str, Framing]:
    """The content type and framing a client's ``Accept`` header asks for."""
    if EVENT_STREAM in accept:
        return EVENT_STREAM, event
    return NDJSON, line


def as_json(content_type: str, body: bytes) -> bytes:
    """One part as one compact JSON value."""
    if content_type.startswith("application/json"):
        return body
    return orjson.dumps(body.decode("utf-8", "replace"))


def line(content_type: str, body: bytes) -> bytes:
    return as_json(content_type, body) + b"\n"


def event(content_type: str, body: bytes) -> bytes:
    return b"data: " + as_json(content_type, body) + b"\n\n"
