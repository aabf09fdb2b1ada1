"""The inference routes, as a lean ASGI endpoint (the hot path).

    POST|PUT /predictions/{model}[/{version}]    TorchServe-compatible: JSON or raw bytes in
    POST|PUT /explanations/{model}[/{version}]   a TorchServe handler's explain_handle
    POST /predict                                the default model (or ?model=NAME)

The version's codec reads the body: a model served by a TorchServe handler gets the whole
HTTP request (``podium.protocols.torchserve``), decoded in its worker the way TorchServe
does; any other model gets the payload (``podium.protocols.native``): parsed JSON, or the
raw bytes.

They skip FastAPI's routing and validation on purpose: that alone costs more than the rest
of the request path (see the design page). FastAPI still documents them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import orjson

from podium.backends.pending import Stream
from podium.core.dataplane import DataPlane
from podium.core.registry import ModelVersion
from podium.errors import (
    ClientDisconnected,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PodiumError,
)
from podium.frontends.rest.streams import EVENT_STREAM, Framing, framing_for
from podium.frontends.rest.types import Receive, Scope, Send
from podium.protocols import NATIVE, TORCHSERVE, native, torchserve
from podium.protocols.native import parse_payload
from podium.types import Answer, InferenceRequest

log = logging.getLogger("podium.server")

PREDICTIONS = "/predictions/"
EXPLANATIONS = "/explanations/"


def is_inference(scope: Scope) -> bool:
    path: str = scope["path"]
    if scope["method"] == "POST":
        return path == "/predict" or path.startswith((PREDICTIONS, EXPLANATIONS))
    return scope["method"] == "PUT" and path.startswith((PREDICTIONS, EXPLANATIONS))


class InferenceEndpoint:
    """ASGI app answering the inference routes."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            model, version, explain = self._route(scope)
            served = self.dataplane.resolve(model, version)
            self.dataplane.admit(served)
            body, content_type = await read_body(scope, receive, self.max_body_bytes)
            if served.codec == NATIVE and not explain:  # the common case, inlined
                request = InferenceRequest(NATIVE, parse_payload(body, content_type))
            else:
                request = native_request(served, scope, body, content_type, explain)
            response = await self.dataplane.infer(served, request, until_gone=receive)
        except ClientDisconnected:
            return
        except PodiumError as error:
            await send_error(send, error)
            return
        if isinstance(response, Stream):
            framing = None if served.codec == TORCHSERVE else framing_for(accept_of(scope))
            await send_stream(send, response, self.dataplane.parts(served, response), framing)
        else:
            await send_response(send, response)

    def _route(self, scope: Scope) -> tuple[str, str | None, bool]:
        query = scope["query_string"].decode("latin-1")
        return route_of(scope["path"], query, self.dataplane.registry.default_model)


async def read_body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes, str]:
    """A request's whole body (``PayloadTooLarge`` past ``limit`` bytes, announced or
    sent) and its content type, lower case."""
    content_type = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1").lower()
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise InvalidRequest("Content-Length is not a number") from None
            if length > limit:
                raise PayloadTooLarge(f"Body of {length} bytes is over the {limit} limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks) if len(chunks) != 1 else chunks[0], content_type


def route_of(
    path: str, query: str, default_model: Callable[[], str]
) -> tuple[str, str | None, bool]:
    """Model, version (None: the default) and whether an explanation is asked for, from an
    inference route's path and query string."""
    if path == "/predict":
        model = parse_qs(query).get("model", [""])[0] if query else ""
        return model or default_model(), None, False
    explain = path.startswith(EXPLANATIONS)
    if not explain and not path.startswith(PREDICTIONS):
        raise ModelNotFound(f"No route {path}")
    parts = path[len(EXPLANATIONS if explain else PREDICTIONS) :].split("/")
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
        raise ModelNotFound(f"No route {path}")
    return parts[0], parts[1] if len(parts) == 2 else None, explain


def native_request(
    served: ModelVersion, scope: Scope, body: bytes, content_type: str, explain: bool
) -> InferenceRequest:
    """A ``/predictions`` request in the version's codec: TorchServe's view of HTTP, or the
    native payload (which has no explanations)."""
    if served.codec == TORCHSERVE:
        query = scope["query_string"].decode("latin-1")
        return torchserve.request(body, content_type, scope["headers"], query, explain)
    if explain:
        raise ModelNotFound(f"{served.name} is not served by a TorchServe handler: no explanations")
    return native.request(body, content_type)


async def send_response(send: Send, response: Answer) -> None:
    status, content_type, body, extra = response
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    if extra:
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def accept_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"accept":
            return str(value.decode("latin-1").lower())
    return ""


async def send_stream(
    send: Send,
    stream: Stream,
    parts: AsyncIterator[bytes],
    framing: tuple[str, Framing] | None = None,
) -> None:
    """A streamed answer, each part as a chunk as it comes: framed (``streams``: NDJSON or
    server-sent events) or, without ``framing``, as the handler sent it (TorchServe). A
    stream cut short (its worker died, a part came too late, the answer grew too large) is
    ended without its last chunk, so the client sees it broken rather than complete."""
    content_type = framing[0] if framing else stream.content_type
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if framing and framing[0] == EVENT_STREAM:
        headers.append((b"cache-control", b"no-cache"))
    headers += [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in stream.headers
        if not framing or k.lower() != "content-type"
    ]
    await send({"type": "http.response.start", "status": stream.status, "headers": headers})
    frame = framing[1] if framing else None
    try:
        async for part in parts:
            if frame is not None:
                part = frame(stream.part_type, part)
            await send({"type": "http.response.body", "body": part, "more_body": True})
    except PodiumError as error:
        log.warning("streamed answer cut short: %s", error.message)
        return
    await send({"type": "http.response.body", "body": b""})


async def send_error(send: Send, error: PodiumError) -> None:
    body = orjson.dumps(error.body())
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers().items()
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
