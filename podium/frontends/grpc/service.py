"""The ``GRPCInferenceService`` RPCs: each parses its request, asks the data plane, and
answers or aborts with the gRPC status that matches the error's HTTP one.

Handlers take and return serialized messages (the server registers them without
serializers) so that ``ModelInfer`` passes on the ``ModelInferResponse`` its worker already
serialized, untouched, and so that a request protobuf cannot parse is this module's
``INVALID_ARGUMENT`` rather than grpcio's ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc
import orjson
from google.protobuf.message import DecodeError, Message

from podium.core.dataplane import DataPlane
from podium.errors import ClientDisconnected, InvalidRequest, PodiumError, Unauthorized
from podium.protocols import V2_GRPC
from podium.protocols.v2.grpc import GRPC, decode_request
from podium.protocols.v2.metadata import server_metadata
from podium.protocols.v2.proto.grpc_service_pb2 import (
    ModelInferRequest,
    ModelMetadataRequest,
    ModelMetadataResponse,
    ModelReadyRequest,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from podium.types import InferenceRequest

CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.UNAVAILABLE,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""The gRPC status for each HTTP status Podium answers with; any other is ``INTERNAL``."""

Method = Callable[[bytes, Any], Awaitable[bytes]]
"""One RPC's implementation: the serialized request and its ``grpc.aio.ServicerContext``
in, the serialized response out."""

M = TypeVar("M", bound=Message)


def status_code(status: int) -> grpc.StatusCode:
    """The gRPC status code for an HTTP status."""
    return CODES.get(status, grpc.StatusCode.INTERNAL)


def parse(message_type: type[M], data: bytes) -> M:
    """A request message, or ``InvalidRequest`` when the bytes are not one."""
    try:
        message: M = message_type.FromString(data)
    except DecodeError:
        raise InvalidRequest(f"Not a valid {message_type.__name__} message") from None
    return message


def serialize(message: Message) -> bytes:
    """A response message's bytes (the server sends them as they are)."""
    data: bytes = message.SerializeToString()
    return data


class InferenceService:
    """The RPCs of ``inference.GRPCInferenceService`` over one data plane.

    ``token``, when set, is required as ``authorization: Bearer <token>`` metadata by every
    RPC except the two health probes (``ServerLive``, ``ServerReady``), as the HTTP front
    end leaves ``/ping`` open.
    """

    def __init__(self, dataplane: DataPlane, max_body_bytes: int, token: str | None) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes
        self._token = token.encode() if token else None

    def methods(self) -> dict[str, Method]:
        """Each RPC's implementation, by method name."""
        return {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }

    async def server_live(self, data: bytes, context: Any) -> bytes:
        # Answering at all is being live: the server is up and its loop turns.
        return serialize(ServerLiveResponse(live=True))

    async def server_ready(self, data: bytes, context: Any) -> bytes:
        ready = self.dataplane.registry.healthy and not self.dataplane.draining
        return serialize(ServerReadyResponse(ready=ready))

    async def model_ready(self, data: bytes, context: Any) -> bytes:
        try:
            self._authorize(context)
            request = parse(ModelReadyRequest, data)
            try:
                ready = self.dataplane.resolve(request.name, request.version or None).ready
            except PodiumError:
                # As Triton answers: a model that is not there (or a server that is
                # draining) is not ready, and a readiness probe wants a yes or no.
                ready = False
        except PodiumError as error:
            await abort(context, error)
        return serialize(ModelReadyResponse(ready=ready))

    async def server_metadata(self, data: bytes, context: Any) -> bytes:
        try:
            self._authorize(context)
        except PodiumError as error:
            await abort(context, error)
        return serialize(ServerMetadataResponse(**server_metadata()))

    async def model_metadata(self, data: bytes, context: Any) -> bytes:
        try:
            self._authorize(context)
            request = parse(ModelMetadataRequest, data)
            served = self.dataplane.resolve(request.name, request.version or None)
            metadata = served.v2_metadata(
                sorted(self.dataplane.registry.models.get(served.name, {}))
            )
        except PodiumError as error:
            await abort(context, error)
        response = ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"]
        )
        for tensor in metadata["inputs"]:
            response.inputs.add(**tensor)
        for tensor in metadata["outputs"]:
            response.outputs.add(**tensor)
        return serialize(response)

    async def model_infer(self, data: bytes, context: Any) -> bytes:
        """One inference. A client that cancels (or whose deadline passes) cancels this
        coroutine: its request, still queued or in a batch, is then dropped unanswered."""
        try:
            self._authorize(context)
            message = parse(ModelInferRequest, data)
            served = self.dataplane.resolve(message.model_name, message.model_version or None)
            self.dataplane.admit(served)
            request = InferenceRequest(V2_GRPC, decode_request(message, self.max_body_bytes))
            try:
                answer = await self.dataplane.infer(served, request)
            except asyncio.CancelledError:
                # The client left (or its deadline passed): counted as HTTP counts a client
                # that disconnects, and the request, wherever it waits, is dropped.
                self.dataplane.observe(served, ClientDisconnected.status, None, request)
                raise
            status, content_type, body, headers = await self.dataplane.whole(served, answer)
        except PodiumError as error:
            await abort(context, error)
        if status == 200 and content_type == GRPC:
            return body  # the worker serialized the ModelInferResponse
        await abort_answer(context, status, body, headers)

    def _authorize(self, context: Any) -> None:
        if self._token is None:
            return
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, credentials = value.partition(" ")
                if scheme.lower() == "bearer" and secrets.compare_digest(
                    credentials.strip().encode(), self._token
                ):
                    return
        raise Unauthorized()


async def abort(context: Any, error: PodiumError) -> NoReturn:
    """End the RPC with the error's status and message (``Retry-After`` as metadata)."""
    await _abort(context, error.status, error.message, error.headers())


async def abort_answer(
    context: Any, status: int, body: bytes, headers: tuple[tuple[str, str], ...]
) -> NoReturn:
    """End the RPC with a worker's error answer: its status and ``{"error": message}``."""
    try:
        message = str(orjson.loads(body)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body.decode("utf-8", "replace")[:1000] or f"status {status}"
    await _abort(context, status, message, dict(headers))


async def _abort(context: Any, status: int, message: str, headers: Mapping[str, str]) -> NoReturn:
    metadata = tuple((key.lower(), value) for key, value in headers.items())
    await context.abort(status_code(status), message, metadata)
    raise AssertionError("context.abort returned")  # it raises, ending the RPC
