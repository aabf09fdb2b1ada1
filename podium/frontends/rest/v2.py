"""The Open Inference Protocol (KServe V2) over REST, as a lean ASGI endpoint.

    GET  /v2                                              server metadata
    GET  /v2/health/live | /v2/health/ready               200 when live / ready
    GET  /v2/models/{m}[/versions/{v}]                    model metadata
    GET  /v2/models/{m}[/versions/{v}]/ready              200 when the version is ready
    POST /v2/models/{m}[/versions/{v}]/infer              inference (JSON, or the binary
                                                          tensor data extension)

An inference request is parsed and validated completely here (``podium.protocols.v2.rest``)
before it is queued: nothing malformed reaches a worker. It then takes the same path as
``/predictions`` (data plane → batcher → worker); the worker encodes the answer as V2
output tensors. Every error is ``{"error": "..."}`` with the status of its cause.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from podium.core.dataplane import DataPlane
from podium.core.registry import ModelVersion
from podium.errors import (
    ClientDisconnected,
    MethodNotAllowed,
    ModelNotFound,
    PodiumError,
)
from podium.frontends.rest.inference import read_body, send_response
from podium.frontends.rest.openapi import RETRY_AFTER, errors
from podium.frontends.rest.schemas import (
    InferenceRequest as InferenceRequestSchema,
)
from podium.frontends.rest.schemas import (
    InferenceResponse,
    Live,
    MetadataModelResponse,
    MetadataServerResponse,
    ModelReady,
    Ready,
    V2Error,
)
from podium.frontends.rest.types import Receive, Scope, Send
from podium.protocols import V2
from podium.protocols.v2.metadata import server_metadata
from podium.protocols.v2.rest import decode_request, error_body, parse_header_length
from podium.types import Answer, InferenceRequest

PREFIX = "/v2"
JSON = "application/json"
BINARY = "application/octet-stream"
SCHEMAS = (InferenceRequestSchema, InferenceResponse)
"""Models the documented routes name by reference (the app adds them to its document)."""
Answers = dict[int | str, dict[str, Any]]
HEADER_LENGTH = b"inference-header-content-length"


def is_v2(scope: Scope) -> bool:
    path: str = scope["path"]
    return path == PREFIX or path.startswith("/v2/")


class V2Endpoint:
    """ASGI app answering every ``/v2`` route."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self.answer(scope, receive)
        except ClientDisconnected:
            return
        except PodiumError as error:
            answer = error_answer(error)
        await send_response(send, answer)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        path: str = scope["path"].rstrip("/") or "/"
        method: str = scope["method"]
        parts = path.split("/")[2:]  # past "", "v2"
        if parts[:1] == ["models"] and len(parts) >= 2:
            return await self.model_route(scope, receive, method, parts[1:])
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{method} {path}: only GET")
        registry = self.dataplane.registry
        if not parts:
            return json_answer(server_metadata())
        if parts == ["health", "live"]:
            return json_answer({"live": True})
        if parts == ["health", "ready"]:
            ready = registry.healthy and not self.dataplane.draining
            return json_answer({"ready": ready}, 200 if ready else 503)
        raise ModelNotFound(f"No route {path}")

    async def model_route(
        self, scope: Scope, receive: Receive, method: str, parts: list[str]
    ) -> Answer:
        model, version, action = split_model_path(parts, scope["path"])
        if action == "infer":
            if method != "POST":
                raise MethodNotAllowed(f"{method} {scope['path']}: only POST")
            return await self.infer(scope, receive, model, version)
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{method} {scope['path']}: only GET")
        served = self.dataplane.registry.resolve(model, version)
        if action == "ready":
            body = {"name": served.name, "version": served.version, "ready": served.ready}
            return json_answer(body, 200 if served.ready else 503)
        return json_answer(served.v2_metadata(self.versions(served)))

    def versions(self, served: ModelVersion) -> list[str]:
        return sorted(self.dataplane.registry.models.get(served.name, {}))

    async def infer(
        self, scope: Scope, receive: Receive, model: str, version: str | None
    ) -> Answer:
        served = self.dataplane.resolve(model, version)
        self.dataplane.admit(served)
        body, _ = await read_body(scope, receive, self.max_body_bytes)
        request = InferenceRequest(V2, decode_request(body, header_length(scope)))
        dataplane = self.dataplane
        answer = await dataplane.infer(served, request, until_gone=receive)
        return await dataplane.whole(served, answer)


def split_model_path(parts: list[str], path: str) -> tuple[str, str | None, str | None]:
    """``[m]``, ``[m, "versions", v]``, each with ``ready`` or ``infer`` after it →
    (model, version or None, action or None)."""
    action = parts[-1] if len(parts) in (2, 4) and parts[-1] in ("ready", "infer") else None
    if action is not None:
        parts = parts[:-1]
    if len(parts) == 1 and parts[0]:
        return parts[0], None, action
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2], action
    raise ModelNotFound(f"No route {path}")


def header_length(scope: Scope) -> int | None:
    """The ``Inference-Header-Content-Length`` of a binary request, if it has one."""
    for name, value in scope["headers"]:
        if name == HEADER_LENGTH:
            return parse_header_length(value.decode("latin-1"))
    return None


def json_answer(body: Any, status: int = 200) -> Answer:
    return status, JSON, orjson.dumps(body), ()


def error_answer(error: PodiumError) -> Answer:
    """A V2 error: ``{"error": message}`` with the error's status and headers."""
    headers = tuple(error.headers().items())
    return error.status, JSON, error_body(error.message), headers


def document(api: FastAPI, endpoint: V2Endpoint) -> None:
    """Describe the ``/v2`` routes in ``api``'s OpenAPI document. ``V2Endpoint`` answers
    them before FastAPI sees a request; these routes give the same answers if reached."""

    async def through(request: Request) -> Response:
        try:
            status, content_type, body, headers = await endpoint.answer(
                request.scope, request.receive
            )
        except PodiumError as error:
            status, content_type, body, headers = error_answer(error)
        return Response(body, status, headers=dict(headers), media_type=content_type)

    infer_body: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                    "example": {
                        "id": "1",
                        "inputs": [
                            {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["재밌다"]}
                        ],
                    },
                },
                BINARY: {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "The binary tensor data extension: the JSON request, then "
                    "the tensors' bytes; the JSON's length in Inference-Header-Content-Length",
                },
            },
        }
    }
    inferred: dict[str, Any] = {
        "description": "The outputs (as binary tensor data when the request asked for it)",
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/InferenceResponse"}},
            BINARY: {"schema": {"type": "string", "format": "binary"}},
        },
    }
    unready = {"description": "Not ready", "headers": RETRY_AFTER}
    no_model = errors(404, model=V2Error)
    routes: list[tuple[str, str, str, dict[str, Any] | None, Answers]] = [
        ("/v2", "GET", "Server metadata", None, {200: {"model": MetadataServerResponse}}),
        ("/v2/health/live", "GET", "Live: 200 while the server runs", None, {200: {"model": Live}}),
        (
            "/v2/health/ready",
            "GET",
            "Ready: 200 once every model is ready (else 503)",
            None,
            {200: {"model": Ready}, 503: {"model": Ready, "description": "Not ready"}},
        ),
        (
            "/v2/models/{model}",
            "GET",
            "Model metadata: inputs, outputs, platform",
            None,
            {200: {"model": MetadataModelResponse}, **no_model},
        ),
        (
            "/v2/models/{model}/versions/{version}",
            "GET",
            "One version's metadata",
            None,
            {200: {"model": MetadataModelResponse}, **no_model},
        ),
        (
            "/v2/models/{model}/ready",
            "GET",
            "200 once the model is ready (else 503)",
            None,
            {200: {"model": ModelReady}, 503: {"model": ModelReady, **unready}, **no_model},
        ),
        (
            "/v2/models/{model}/versions/{version}/ready",
            "GET",
            "One version's readiness",
            None,
            {200: {"model": ModelReady}, 503: {"model": ModelReady, **unready}, **no_model},
        ),
        ("/v2/models/{model}/infer", "POST", "Inference (JSON or binary tensors)", infer_body, {}),
        (
            "/v2/models/{model}/versions/{version}/infer",
            "POST",
            "Inference on one version",
            infer_body,
            {},
        ),
    ]
    infer_answers = {200: inferred, **errors(400, 404, 413, 500, 503, 504, model=V2Error)}
    for path, method, summary, extra, answers in routes:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("model", "version")
            if f"{{{name}}}" in path
        ]
        api.add_api_route(
            path,
            through,
            methods=[method],
            tags=["v2"],
            summary=summary,
            response_class=Response,
            responses=answers or infer_answers,
            openapi_extra={**(extra or {}), "parameters": parameters} if parameters else extra,
        )
