"""The inference server's ASGI application.

``PodiumApp`` sends the inference routes to the lean ``InferenceEndpoint`` and everything
else (health, docs, OpenAPI) to a FastAPI app, which also owns the lifespan: load the
model store at start, stop the workers at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from podium.core.dataplane import DataPlane
from podium.core.registry import Registry
from podium.errors import ServiceUnavailable, ShuttingDown
from podium.frontends.rest.errors import json_errors
from podium.frontends.rest.hosts import guard_hosts
from podium.frontends.rest.inference import InferenceEndpoint, is_inference, native_request
from podium.frontends.rest.management import TokenGuard, build_management
from podium.frontends.rest.openapi import (
    DOCS_PATHS,
    INFERENCE_ANSWER,
    INFERENCE_BODY,
    RETRY_AFTER,
    STATIC_PREFIX,
    Document,
    add_model_examples,
    errors,
    honest,
    serve_docs,
)
from podium.frontends.rest.schemas import Health
from podium.frontends.rest.types import ASGIApp, Receive, Scope, Send
from podium.frontends.rest.v2 import SCHEMAS as V2_SCHEMAS
from podium.frontends.rest.v2 import V2Endpoint, is_v2
from podium.frontends.rest.v2 import document as document_v2
from podium.observability.predictions import PredictionLog
from podium.observability.prometheus import exposition
from podium.settings import Settings
from podium.version import __version__

log = logging.getLogger("podium.server")

Endpoint = Callable[..., Any]
Decorator = Callable[[Endpoint], Endpoint]

OPEN_PATHS = frozenset({"/ping", *DOCS_PATHS})
"""What an inference token guard lets through (with the docs' static assets)."""


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
        self.predictions = (
            PredictionLog(
                settings.prediction_log,
                settings.prediction_log_sampling,
                settings.prediction_log_max_bytes,
            )
            if settings.prediction_log is not None
            else None
        )
        if self.predictions is not None:
            self.dataplane.observers.append(self.predictions)
        self.inference = InferenceEndpoint(self.dataplane, settings.max_body_bytes)
        self.v2 = V2Endpoint(self.dataplane, settings.max_body_bytes)
        self.api = build_api(self)
        # The management API answers only on its own listener, told apart by local port.
        self.management_port = settings.management_port if token else None
        self.management = (
            build_management(self.registry, token, settings.token_file, self.predictions)
            if token
            else None
        )
        if self.management is not None:
            self.management = guard_hosts(
                self.management, settings.management_host, settings.allowed_hosts
            )
        # Beyond loopback the inference side is guarded too (/ping stays open for probes,
        # the docs for browsers: the document then names no model).
        public: ASGIApp = (
            TokenGuard(self.route_public, inference_token, OPEN_PATHS, (STATIC_PREFIX,))
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
        if app.predictions is not None:
            app.predictions.start()
        try:
            yield
        finally:
            app.dataplane.draining = True
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            # Past the drain: workers still in a batch get a moment, then are killed.
            await app.registry.stop(timeout=2.0)
            if app.predictions is not None:
                await run_in_threadpool(app.predictions.close)

    api = FastAPI(
        title="Podium",
        version=__version__,
        description="Model inference API. Management lives on its own port.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    json_errors(api)
    serve_docs(api)

    def examples(document: Document) -> None:
        registry = app.registry
        served = [registry.resolve(name) for name in sorted(registry.models)]
        found = {v.name: v.manifest.example for v in served if v.manifest.example is not None}
        add_model_examples(document, [v.name for v in served], found)

    # Behind an inference token the document is open but names no model.
    honest(
        api,
        open_paths=OPEN_PATHS if app.inference_token else None,
        schemas=V2_SCHEMAS,
        extend=None if app.inference_token else examples,
        generation=lambda: app.registry.generation,
    )
    health: dict[int | str, dict[str, Any]] = {
        200: {"model": Health, "description": "Every model version ready (or failed for good)"},
        503: {"model": Health, "description": "Still loading", "headers": RETRY_AFTER},
    }

    @api.get(
        "/ping",
        tags=["health"],
        summary="Healthy once every model has its workers",
        response_class=Response,
        responses=health,
    )
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

    text_format = {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}
    metrics_answer = {"description": "Prometheus text format", "content": text_format}

    @api.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: metrics_answer},
    )
    async def metrics() -> Response:
        dropped = app.predictions.dropped if app.predictions is not None else None
        return Response(exposition(app.registry.samples(), dropped), media_type=CONTENT_TYPE_LATEST)

    # The inference routes below are answered by InferenceEndpoint before FastAPI sees
    # them; these definitions document them and serve the same answers if reached.
    async def predict_through_api(
        request: Request, model: str, version: str | None, explain: bool = False
    ) -> Response:
        served = app.dataplane.resolve(model, version)
        body = await request.body()
        content_type = request.headers.get("content-type", "").lower()
        payload = native_request(served, request.scope, body, content_type, explain)
        answer = await app.dataplane.infer(served, payload)
        status, content_type, body, extra = await app.dataplane.whole(served, answer)
        return Response(body, status, headers=dict(extra), media_type=content_type)

    answers = {200: INFERENCE_ANSWER, **errors(400, 404, 413, 500, 503, 504)}

    def inference_route(path: str, summary: str, *methods: str) -> Decorator:
        def add(endpoint: Endpoint) -> Endpoint:
            # A route per method: FastAPI names a route's operations after its first one.
            for method in methods or ("POST", "PUT"):
                api.add_api_route(
                    path,
                    endpoint,
                    methods=[method],
                    tags=["inference"],
                    summary=summary,
                    response_class=Response,
                    responses=answers,
                    openapi_extra={"requestBody": INFERENCE_BODY},
                )
            return endpoint

        return add

    @inference_route("/predictions/{model}", "Run the model's default version")
    async def predictions(request: Request, model: str) -> Response:
        """One request (JSON or raw bytes) to the model's default version."""
        return await predict_through_api(request, model, None)

    @inference_route("/predictions/{model}/{version}", "Run one version of the model")
    async def predictions_version(request: Request, model: str, version: str) -> Response:
        return await predict_through_api(request, model, version)

    @inference_route("/explanations/{model}", "Explain (a TorchServe handler's explain_handle)")
    async def explanations(request: Request, model: str) -> Response:
        """404 for a model not served by a TorchServe handler."""
        return await predict_through_api(request, model, None, explain=True)

    @inference_route("/explanations/{model}/{version}", "Explain with one version")
    async def explanations_version(request: Request, model: str, version: str) -> Response:
        return await predict_through_api(request, model, version, explain=True)

    @inference_route("/predict", "Run the default model", "POST")
    async def predict(request: Request, model: str | None = None) -> Response:
        """The default model (or ``?model=NAME``): ``{"text": "..."}`` in."""
        return await predict_through_api(request, model or app.registry.default_model(), None)

    document_v2(api, app.v2)
    return api
