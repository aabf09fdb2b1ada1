"""The OpenAPI documents, and the pages that show them, served from the package.

    GET /docs                 Swagger UI
    GET /redoc                ReDoc
    GET /docs/static/...      their script, style and icon (vendored: static/README.md)
    GET /openapi.json         the document

Nothing comes from a CDN, so the pages work offline and behind firewalls. These paths
(``DOCS_PATHS``, ``STATIC_PREFIX``) pass a ``TokenGuard`` without the token: they hold no
data, and a browser cannot send a bearer token with a page load; Swagger UI's Authorize
button takes the token for the calls made from the page.

FastAPI's generated document is made to say what the server really answers (``honest``):
its 422 (never sent: parameter errors are answered 400, see ``errors.json_errors``) becomes
a 400 ``ErrorBody``; each route lists its own error statuses (``errors``); every operation
gets the 421 of the Host guard, and, where a token guards the port, the 401 of the token
guard and a bearer security scheme.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from podium.frontends.rest.schemas import ErrorBody

STATIC = Path(__file__).with_name("static")
STATIC_PREFIX = "/docs/static/"
OPENAPI = "/openapi.json"
DOCS_PATHS = frozenset({"/docs", "/redoc", OPENAPI})
"""The paths (with everything under ``STATIC_PREFIX``) a token guard lets through."""

JSON = "application/json"
BINARY = "application/octet-stream"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

REASONS: dict[int, str] = {
    400: "Malformed request (bad JSON, parameter, header), or input the handler refused",
    401: "Missing or wrong bearer token",
    403: "Refused by configuration (registration from URLs is off, or the URL is not allowed)",
    404: "No such model or version",
    409: "Conflicts with the current state (already registered, still the default)",
    413: "Body over max_body_bytes",
    421: "A Host header this server does not answer to (DNS rebinding guard)",
    500: "The handler raised, or its answer cannot be sent",
    503: "Not ready, queue full, worker died, failed to load, or shutting down",
    504: "No answer within the request timeout",
}
RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
}
WWW_AUTHENTICATE: dict[str, Any] = {
    "WWW-Authenticate": {"description": "Always ``Bearer``", "schema": {"type": "string"}}
}

INFERENCE_BODY: dict[str, Any] = {
    "required": False,
    "description": "Whatever the model's handler reads: JSON (parsed), or any other body as "
    "bytes (TorchServe handlers also get form fields and the query string)",
    "content": {
        JSON: {"schema": {}, "example": {"text": "정말 재밌게 잘봤습니다!"}},
        BINARY: {"schema": {"type": "string", "format": "binary"}},
    },
}
INFERENCE_ANSWER: dict[str, Any] = {
    "description": "The handler's answer: JSON, bytes, or (streamed, or from a TorchServe "
    "handler) the content type the handler chose",
    "content": {
        JSON: {"schema": {}},
        BINARY: {"schema": {"type": "string", "format": "binary"}},
        "*/*": {"schema": {}},
    },
}


def errors(*statuses: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for a route's error statuses, each with its body ``model``
    (and ``Retry-After`` on 503)."""
    return {
        status: {
            "model": model,
            "description": REASONS[status],
            **({"headers": RETRY_AFTER} if status == 503 else {}),
        }
        for status in statuses
    }


def error_response(status: int, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response object: ``ErrorBody`` with ``status``'s reason."""
    response: dict[str, Any] = {
        "description": REASONS[status],
        "content": {JSON: {"schema": ERROR_REF}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


Document = dict[str, Any]


def honest(
    api: FastAPI,
    *,
    open_paths: frozenset[str] | None = None,
    schemas: Sequence[type[BaseModel]] = (),
    extend: Callable[[Document], None] | None = None,
    generation: Callable[[], int] = lambda: 0,
) -> None:
    """Make ``api.openapi`` build the honest document (module docstring), rebuilt when
    ``generation()`` changes. ``open_paths``: where a token guards the port, the paths it
    lets through (None: no token). ``schemas``: models that routes name by reference only.
    ``extend`` adds what is known only at run time (the served models)."""
    cache: dict[int, Document] = {}

    def openapi() -> Document:
        key = generation()
        document = cache.get(key)
        if document is None:
            # A deep copy: FastAPI shares the routes' openapi_extra with the document.
            document = copy.deepcopy(
                get_openapi(
                    title=api.title,
                    version=api.version,
                    description=api.description,
                    routes=api.routes,
                )
            )
            tidy(document, open_paths, schemas)
            if extend is not None:
                extend(document)
            cache.clear()
            cache[key] = document
        return document

    api.openapi = openapi  # type: ignore[method-assign]


def tidy(
    document: Document, open_paths: frozenset[str] | None, schemas: Iterable[type[BaseModel]]
) -> None:
    components = document.setdefault("components", {})
    defined = components.setdefault("schemas", {})
    defined.pop("HTTPValidationError", None)
    defined.pop("ValidationError", None)
    defined.update(definitions([ErrorBody, *schemas]))
    if open_paths is not None:
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The token given to (or generated by) podium serve",
            }
        }
        document["security"] = [{"bearer": []}]
    for path, item in document["paths"].items():
        for operation in item.values():
            responses: dict[str, Any] = operation["responses"]
            # FastAPI lists 422 wherever a route has parameters; Podium answers 400, and
            # only where a check can fail (a string in the path always passes).
            if responses.pop("422", None) is not None and validated(operation):
                responses.setdefault("400", error_response(400))
            responses.setdefault("421", error_response(421))
            if open_paths is not None and path in open_paths:
                operation["security"] = []
            elif open_paths is not None:
                responses.setdefault("401", error_response(401, WWW_AUTHENTICATE))
            operation["responses"] = dict(sorted(responses.items()))


def validated(operation: Document) -> bool:
    """Whether FastAPI checks something of the operation's request that can fail."""
    return "requestBody" in operation or any(
        parameter["in"] != "path" or parameter.get("schema", {}).get("type") != "string"
        for parameter in operation.get("parameters", [])
    )


def definitions(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """JSON schemas of ``models`` (and the models they hold), keyed by name."""
    _, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    found: dict[str, Any] = top.get("$defs", {})
    return found


def add_model_examples(
    document: Document, names: Sequence[str], examples: Mapping[str, Any]
) -> None:
    """The served models' names as examples of every ``model`` parameter, and each model's
    archive example as an example body of the inference routes."""
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model" and names:
                    parameter["examples"] = {name: {"value": name} for name in names}
            json_body = operation.get("requestBody", {}).get("content", {}).get(JSON)
            inference = path.startswith(("/predictions/", "/explanations/", "/predict"))
            if inference and json_body is not None and examples:
                json_body.pop("example", None)
                json_body["examples"] = {
                    name: {"summary": f"{name} (its archive's example)", "value": value}
                    for name, value in examples.items()
                }


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the pages' own start-up script
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search
        "connect-src 'self'",
    ]
)
"""The docs pages load nothing from elsewhere, even what a bundle asks for (ReDoc's footer
links an image on its vendor's CDN): the browser refuses it rather than calling out."""


def offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def serve_docs(api: FastAPI) -> None:
    """``/docs``, ``/redoc`` and their assets on ``api`` (built with ``docs_url=None,
    redoc_url=None``), from the package."""
    api.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC), name="docs-static")

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + OPENAPI,
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PREFIX}swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}swagger-ui/favicon-32x32.png",
            # No call to the online validator (validator.swagger.io).
            swagger_ui_parameters={"validatorUrl": None},
        )
        return offline(page)

    @api.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=root + OPENAPI,
            title=f"{api.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PREFIX}redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
        return offline(page)
