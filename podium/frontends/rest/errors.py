"""Podium's JSON error shape (``{code, type, message}``) for a FastAPI app's own errors.

Routes raise ``PodiumError``s; FastAPI's parameter validation (answered 400, not 422)
and its HTTP errors (404, 405) are put in the same shape, so every error a client sees
reads alike on both ports.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium.errors import InvalidRequest, PodiumError


def json_errors(api: FastAPI) -> None:
    """Answer ``api``'s errors as Podium's JSON errors."""

    @api.exception_handler(PodiumError)
    async def podium_error(_: Request, error: PodiumError) -> Response:
        return JSONResponse(dict(error.body()), error.status, headers=error.headers())

    @api.exception_handler(RequestValidationError)
    async def invalid_parameters(_: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "request"
        invalid = InvalidRequest(f"{where}: {first.get('msg', 'invalid')}")
        return JSONResponse(dict(invalid.body()), invalid.status)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> Response:
        body = {"code": error.status_code, "type": "HTTPError", "message": str(error.detail)}
        return JSONResponse(body, error.status_code, headers=error.headers)
