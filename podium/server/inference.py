"""The inference routes, as a lean ASGI endpoint (the hot path).

    POST /predictions/{model}[/{version}]   TorchServe-compatible: JSON or raw bytes in
    POST /predict                           the default model (or ?model=NAME)

They skip FastAPI's routing and validation on purpose: that alone costs more than the rest
of the request path (see the design page). FastAPI still documents them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from podium import wire
from podium.dataplane import DataPlane, parse_payload
from podium.errors import (
    ClientDisconnected,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PodiumError,
)
from podium.server.types import Receive, Scope, Send

PREDICTIONS = "/predictions/"


def is_inference(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] == "POST" and (path == "/predict" or path.startswith(PREDICTIONS))


class InferenceEndpoint:
    """ASGI app answering the inference routes."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            model, version = self._route(scope)
            body, content_type = await self._read_body(scope, receive)
            payload = parse_payload(body, content_type)
            response = await self.dataplane.infer(model, version, payload, until_gone=receive)
        except ClientDisconnected:
            return
        except PodiumError as error:
            await send_error(send, error)
            return
        await send_response(send, response)

    def _route(self, scope: Scope) -> tuple[str, str | None]:
        path: str = scope["path"]
        if path == "/predict":
            query = parse_qs(scope["query_string"].decode("latin-1"))
            return query.get("model", [""])[0] or self.dataplane.registry.default_model(), None
        parts = path[len(PREDICTIONS) :].split("/")
        if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
            raise ModelNotFound(f"No route {path}")
        return parts[0], parts[1] if len(parts) == 2 else None

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, str]:
        content_type = ""
        limit = self.max_body_bytes
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


async def send_response(send: Send, response: wire.Answer) -> None:
    status, content_type, body = response
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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


def documented_body() -> dict[str, Any]:
    """OpenAPI request body shared by the inference routes."""
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {}, "example": {"text": "정말 재밌게 잘봤습니다!"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
