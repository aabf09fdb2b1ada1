"""The management API (TorchServe-compatible), on its own loopback port, token required.

    GET    /models                          registered models (paginated)
    GET    /models/{m}[/{v}]                versions: workers (state, pid, memory), batching
    POST   /models?url=&model_name=&...     register an archive of the model store
    PUT    /models/{m}[/{v}]?min_worker=    scale live, without dropping requests
    DELETE /models/{m}/{v}                  unregister: drain, then stop
    POST   /token                           rotate the token (written to the token file)
    PUT    /models/{m}/{v}/set-default      route version-less requests to {v}
    GET    /models/{m}/predictions?limit=   the prediction log's last entries for {m}

Every route, DELETE included, needs ``Authorization: Bearer <token>``; the docs
(``/docs``, ``/redoc``, their assets and ``/openapi.json``, which names no model) load
without it, and Swagger UI's Authorize button takes it for the calls made from the page.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response

from podium.core.dataplane import DataPlane
from podium.core.fetch import discard_on_failure, download
from podium.core.registry import ModelVersion, Registry
from podium.errors import Forbidden, InvalidRequest, ModelNotFound, Unauthorized
from podium.frontends.rest.errors import json_errors
from podium.frontends.rest.openapi import DOCS_PATHS, STATIC_PREFIX, errors, honest, serve_docs
from podium.frontends.rest.schemas import ModelDescription, ModelList, Status, Token
from podium.frontends.rest.token_file import write_secret
from podium.frontends.rest.types import ASGIApp, Receive, Scope, Send
from podium.observability.predictions import PredictionLog, read_predictions
from podium.protocols import TORCHSERVE, torchserve
from podium.version import __version__

PAGE_LIMIT = 100
log = logging.getLogger("podium.management")


class TokenGuard:
    """Answers 401 to any request without the bearer token, before any routing.

    Paths in ``open_paths`` (health checks, the docs) and under ``open_prefixes`` (the
    docs' static assets) pass without it.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_paths: frozenset[str] = frozenset(),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        self.rotate(token)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def rotate(self, token: str) -> None:
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.is_open(scope["path"]):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not bearer_matches(given, self.expected):
                response = JSONResponse(
                    dict(Unauthorized().body()), 401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def bearer_matches(authorization: bytes, token: bytes) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>``: the scheme in any
    case (RFC 9110), the token compared in constant time."""
    scheme, _, given = authorization.partition(b" ")
    return hmac.compare_digest(given.strip(), token) and scheme.lower() == b"bearer"


def build_management(
    registry: Registry,
    token: str,
    token_file: Path | None = None,
    predictions: PredictionLog | None = None,
) -> ASGIApp:
    """The management app; ``token`` is the bearer token every request must carry.

    ``POST /token`` rotates it (the new one is also written to ``token_file``);
    ``predictions`` is the prediction log its route reads (None: the log is off).
    """
    api = FastAPI(
        title="Podium management",
        version=__version__,
        description="TorchServe-compatible management API. Every call needs the bearer "
        "token (Authorize); these docs load without it.",
        docs_url=None,
        redoc_url=None,
    )
    guard = TokenGuard(api, token, DOCS_PATHS, (STATIC_PREFIX,))
    settings = registry.settings
    serve_docs(api)
    honest(api, open_paths=DOCS_PATHS)

    @api.post("/token", response_model=None, responses={200: {"model": Token}})
    async def rotate_token() -> dict[str, str]:
        fresh = secrets.token_urlsafe(32)
        if token_file is not None:
            write_secret(token_file, fresh)
        guard.rotate(fresh)
        return {"token": fresh}

    json_errors(api)

    @api.get("/models", response_model=None, responses={200: {"model": ModelList}})
    async def list_models(
        limit: Annotated[int, Query(ge=1, le=1000)] = PAGE_LIMIT,
        next_page_token: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        names = sorted(registry.models)
        page = names[next_page_token : next_page_token + limit]
        body: dict[str, Any] = {
            "models": [{"modelName": n, "modelUrl": registry.resolve(n).manifest.key} for n in page]
        }
        if next_page_token + limit < len(names):
            body["nextPageToken"] = str(next_page_token + limit)
        return body

    described: dict[int | str, dict[str, Any]] = {
        200: {"model": list[ModelDescription]},
        **errors(404, 500, 503, 504),  # customized=true asks the handler
    }

    @api.get("/models/{model}", response_model=None, responses=described)
    async def describe_model(model: str, customized: bool = False) -> list[dict[str, Any]]:
        registry.resolve(model)
        versions = list(registry.models[model].values())
        return [await describe_with(registry, v, customized) for v in versions]

    # Before /models/{model}/{version}: a version named "predictions" is not described by GET.
    @api.get("/models/{model}/predictions", response_model=None, responses=errors(404))
    def recent_predictions(
        model: str, limit: Annotated[int, Query(ge=1, le=1000)] = 10
    ) -> list[dict[str, Any]]:
        """The prediction log's last ``limit`` entries for the model, oldest first (404
        when the log is off: ``podium serve --prediction-log PATH``)."""
        registry.resolve(model)
        if predictions is None:
            raise ModelNotFound("The prediction log is off (podium serve --prediction-log)")
        return read_predictions(predictions.path, model, limit)

    @api.get("/models/{model}/{version}", response_model=None, responses=described)
    async def describe_version(
        model: str, version: str, customized: bool = False
    ) -> list[dict[str, Any]]:
        return [await describe_with(registry, registry.resolve(model, version), customized)]

    @api.post(
        "/models",
        responses={
            200: {"model": Status, "description": "Registered and ready (synchronous)"},
            202: {"model": Status, "description": "Registration started (synchronous=false)"},
            **errors(400, 403, 409, 500, 503, 504),
        },
    )
    async def register(
        url: str,
        model_name: str | None = None,
        initial_workers: Annotated[int | None, Query(ge=0, le=64)] = None,
        batch_size: Annotated[int | None, Query(ge=1, le=4096)] = None,
        max_batch_delay: Annotated[float | None, Query(ge=0)] = None,
        response_timeout: Annotated[float | None, Query(gt=0)] = None,
        runtime: str | None = None,
        handler: str | None = None,
        synchronous: bool = True,
    ) -> Response:
        if runtime is not None and runtime not in ("python", "python3"):
            raise InvalidRequest(f"runtime {runtime!r}: Podium runs Python handlers only")
        if handler is not None:
            raise InvalidRequest(
                "handler cannot be set at registration: archive the model with its handler"
            )
        path = Path(url)
        fetched: Path | None = None
        if "://" in url:
            if not settings.allowed_urls:
                raise Forbidden("Registration from URLs is off: the allow-list is empty")
            fetched = await download(
                url,
                settings.allowed_urls,
                settings.model_store,
                settings.max_archive_bytes,
                settings.download_timeout,
            )
            path = Path(fetched.name)
        overrides = {
            key: value
            for key, value in {
                "min_workers": initial_workers,
                "max_workers": max(initial_workers or 1, 1) if initial_workers else None,
                "batch_size": batch_size,
                "max_batch_delay": max_batch_delay,
            }.items()
            if value is not None
        }
        # A failed background registration stays listed (as failed, with its reason);
        # a synchronous one answers the reason and leaves nothing behind.
        work = registry.register(
            path,
            overrides,
            expected_name=model_name,
            request_timeout=response_timeout,
            keep_failed=not synchronous,
        )
        if fetched is not None:
            # A downloaded archive that fails to register must not stay in the store.
            work = discard_on_failure(fetched, work)
        if not synchronous:
            background(work)
            return JSONResponse({"status": f"Registration of {url} started"}, 202)
        served = await work
        return JSONResponse({"status": f"Model {served.name} version {served.version} registered"})

    scaled: dict[int | str, dict[str, Any]] = {
        200: {"model": Status, "description": "Scaled (synchronous)"},
        202: {"model": Status, "description": "Scaling started (synchronous=false)"},
        **errors(400, 404, 500, 503),
    }

    @api.put("/models/{model}", responses=scaled)
    async def scale_default(
        model: str,
        min_worker: Annotated[int, Query(ge=0, le=64)] = 1,
        max_worker: Annotated[int | None, Query(ge=1, le=64)] = None,
        synchronous: bool = True,
    ) -> Response:
        return await scale(registry.resolve(model), min_worker, max_worker, synchronous)

    @api.put("/models/{model}/{version}", responses=scaled)
    async def scale_version(
        model: str,
        version: str,
        min_worker: Annotated[int, Query(ge=0, le=64)] = 1,
        max_worker: Annotated[int | None, Query(ge=1, le=64)] = None,
        synchronous: bool = True,
    ) -> Response:
        return await scale(registry.resolve(model, version), min_worker, max_worker, synchronous)

    @api.delete(
        "/models/{model}/{version}",
        response_model=None,
        responses={200: {"model": Status}, **errors(404, 409)},
    )
    async def unregister(model: str, version: str) -> dict[str, str]:
        await registry.unregister(model, version)
        return {"status": f"Model {model} version {version} unregistered"}

    @api.put(
        "/models/{model}/{version}/set-default",
        response_model=None,
        responses={200: {"model": Status}, **errors(404)},
    )
    async def set_default(model: str, version: str) -> dict[str, str]:
        registry.set_default(model, version)
        return {"status": f"Default version of {model} is {version}"}

    return guard


async def scale(
    served: ModelVersion, minimum: int, maximum: int | None, synchronous: bool
) -> Response:
    """Set a version's worker bounds; wait for the new workers unless asked not to."""
    if maximum is not None and maximum < minimum:
        raise InvalidRequest(f"max_worker {maximum} is below min_worker {minimum}")
    maximum = maximum or minimum
    work = served.backend.scale(minimum, maximum)
    bounds = f"{served.name}/{served.version} to {minimum}..{maximum} workers"
    if not synchronous:
        background(work)
        return JSONResponse({"status": f"Scaling {bounds}"}, 202)
    await work
    if served.failed is not None:
        raise served.backend.failure(served.failed)
    return JSONResponse({"status": f"Scaled {bounds}"})


_background: set[asyncio.Task[Any]] = set()


def background(work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` after answering (``synchronous=false``); failures are logged."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background management call failed: %s", task.exception())


async def describe_with(
    registry: Registry, served: ModelVersion, customized: bool
) -> dict[str, Any]:
    """``describe``, plus (``customized=true``, a TorchServe handler) what the handler's
    ``describe_handle`` answers, as TorchServe's describe API does."""
    described = describe(registry, served)
    if customized and served.codec == TORCHSERVE:
        request = torchserve.describe_request()
        dataplane = DataPlane(registry)
        answer = await dataplane.whole(served, await dataplane.infer(served, request))
        status, _, body, _ = answer
        try:
            described["customizedMetadata"] = orjson.loads(body)
        except orjson.JSONDecodeError:
            described["customizedMetadata"] = body.decode("utf-8", "replace")
        if status != 200:
            described["customizedStatus"] = status
    return described


def describe(registry: Registry, served: ModelVersion) -> dict[str, Any]:
    manifest = served.manifest
    status = served.backend.status()
    return {
        "modelName": served.name,
        "modelVersion": served.version,
        "default": registry.defaults.get(served.name) == served.version,
        "ready": served.ready,
        "status": served.status,
        "error": served.failed,
        "restarts": status.restarts,
        "batchSize": status.batch_size,
        "maxBatchDelay": manifest.max_batch_delay,
        "batching": status.batching,
        "minWorkers": status.minimum,
        "maxWorkers": status.maximum,
        "responseTimeout": served.backend.request_timeout,
        "queueDepth": status.queue_depth,
        "workers": [
            {
                "id": worker.worker_id,
                "pid": worker.pid,
                "state": worker.state,
                "memoryUsage": resident_bytes(worker.pid),
            }
            for worker in status.workers
        ],
    }


def resident_bytes(pid: int | None) -> int | None:
    """A process's resident memory, from /proc (None where unavailable)."""
    if pid is None:
        return None
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
