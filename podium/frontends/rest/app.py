"""The inference server's ASGI application.

``PodiumApp`` sends the inference routes to the lean ``InferenceEndpoint`` and everything
else (health, docs, OpenAPI) to a FastAPI app, which also owns the lifespan: load the
model store at start, stop the workers at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from podium.core.dataplane import DataPlane
from podium.core.registry import Registry
from podium.errors import ServiceUnavailable, ShuttingDown
from podium.frontends.rest.errors import json_errors
from podium.frontends.rest.hosts import guard_hosts
from podium.frontends.rest.inference import (
    InferenceEndpoint,
    documented_body,
    is_inference,
    native_request,
)
from podium.frontends.rest.management import TokenGuard, build_management
from podium.frontends.rest.types import ASGIApp, Receive, Scope, Send
from podium.frontends.rest.v2 import V2Endpoint, is_v2
from podium.frontends.rest.v2 import document as document_v2
from podium.observability.prometheus import exposition
from podium.settings import Settings
from podium.version import __version__

log = logging.getLogger("podium.server")


class PodiumApp:
    """Routes a request to the hot inference path or to the FastAPI app."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        token: str | None = None,
        inference_token: str | None = None,
    ) -> None:
        self.settings = settings
        self.inference_token = inference_token
        self.registry = registry or Registry(settings)
        self.dataplane = DataPlane(self.registry)
        self.inference = InferenceEndpoint(self.dataplane, settings.max_body_bytes)
        self.v2 = V2Endpoint(self.dataplane, settings.max_body_bytes)
        self.api = build_api(self)
        # The management API answers only on its own listener, told apart by local port.
        self.management_port = settings.management_port if token else None
        self.management = (
            build_management(self.registry, token, settings.token_file) if token else None
        )
        if self.management is not None:
            self.management = guard_hosts(
                self.management, settings.management_host, settings.allowed_hosts
            )
        # Beyond loopback the inference side is guarded too (/ping stays open for probes).
        public: ASGIApp = (
            TokenGuard(self.route_public, inference_token, frozenset({"/ping"}))
            if inference_token
            else self.route_public
        )
        self.public = guard_hosts(public, settings.host, settings.allowed_hosts)

    def begin_drain(self) -> None:
        """Shutdown began: refuse new requests; at ``drain_timeout``, answer those still
        waiting or running 503 ``ShuttingDown``."""
        self.dataplane.draining = True
        asyncio.get_running_loop().call_later(
            self.settings.drain_timeout, self.registry.abandon, ShuttingDown()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            if self.management and server and server[1] == self.management_port:
                await self.management(scope, receive, send)
                return
        await self.public(scope, receive, send)

    async def route_public(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_inference(scope):
            await self.inference(scope, receive, send)
        elif scope["type"] == "http" and is_v2(scope):
            await self.v2(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def build_api(app: PodiumApp) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Listen at once and load in the background: /ping answers 503 until every
        # model is ready, which is what a startup probe wants to see.
        loading = asyncio.ensure_future(app.registry.load_store())
        try:
            yield
        finally:
            app.dataplane.draining = True
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            # Past the drain: workers still in a batch get a moment, then are killed.
            await app.registry.stop(timeout=2.0)

    api = FastAPI(
        title="Podium",
        version=__version__,
        description="Model inference API. Management lives on its own port.",
        lifespan=lifespan,
    )

    json_errors(api)

    @api.get("/ping", tags=["health"], summary="Healthy once every model has its workers")
    async def ping() -> Response:
        """Healthy once every model version is ready or failed for good (a failed version
        is listed under ``failed`` with its reason; ``--strict-health`` makes it unhealthy)."""
        body: dict[str, Any] = {"status": "Healthy" if app.registry.healthy else "Unhealthy"}
        failed = app.registry.failures()
        if failed:
            body["failed"] = failed
        if app.registry.healthy:
            return JSONResponse(body)
        error = ServiceUnavailable("Not every model has its minimum of ready workers")
        return JSONResponse(body, 503, headers=error.headers())

    @api.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(exposition(app.registry.samples()), media_type=CONTENT_TYPE_LATEST)

    # The inference routes below are answered by InferenceEndpoint before FastAPI sees
    # them; these definitions document them and serve the same answers if reached.
    async def predict_through_api(request: Request, model: str, version: str | None) -> Response:
        served = app.dataplane.resolve(model, version)
        body = await request.body()
        content_type = request.headers.get("content-type", "").lower()
        payload = native_request(served, request.scope, body, content_type, explain=False)
        answer = await app.dataplane.infer(served, payload)
        status, content_type, body, extra = await app.dataplane.whole(served, answer)
        return Response(body, status, headers=dict(extra), media_type=content_type)

    inference_doc: dict[str, Any] = {"requestBody": documented_body()}

    @api.post("/predictions/{model}", tags=["inference"], openapi_extra=inference_doc)
    async def predictions(request: Request, model: str) -> Response:
        """Run the model's default version on one request (JSON or raw bytes)."""
        return await predict_through_api(request, model, None)

    @api.post("/predictions/{model}/{version}", tags=["inference"], openapi_extra=inference_doc)
    async def predictions_version(request: Request, model: str, version: str) -> Response:
        """Run one version of the model."""
        return await predict_through_api(request, model, version)

    @api.post("/predict", tags=["inference"], openapi_extra=inference_doc)
    async def predict(request: Request, model: str | None = None) -> Response:
        """Run the default model (or ``?model=NAME``): ``{"text": "..."}`` in."""
        return await predict_through_api(request, model or app.registry.default_model(), None)

    document_v2(api, app.v2)
    return api
