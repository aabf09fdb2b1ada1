"""Podium: put a trained model behind a fast, reliable HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.errors import (
    Conflict,
    Forbidden,
    HandlerError,
    InvalidInput,
    InvalidRequest,
    MethodNotAllowed,
    MisdirectedRequest,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    PodiumError,
    QueueFull,
    RequestTimeout,
    ResponseTooLarge,
    ServerUnreachable,
    ServiceUnavailable,
    ShuttingDown,
    Unauthorized,
    WorkerDied,
)
from podium.handler import Context, Handler
from podium.version import __version__

if TYPE_CHECKING:
    from podium.client import AsyncClient, Client


# The errors are those a handler raises (InvalidInput) and those the clients raise: for an
# error answer, rebuilt from its JSON "type", and for none (ServerUnreachable).
__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "Context",
    "Forbidden",
    "Handler",
    "HandlerError",
    "InvalidInput",
    "InvalidRequest",
    "MethodNotAllowed",
    "MisdirectedRequest",
    "ModelFailed",
    "ModelNotFound",
    "ModelNotReady",
    "PayloadTooLarge",
    "PodiumError",
    "QueueFull",
    "RequestTimeout",
    "ResponseTooLarge",
    "ServerUnreachable",
    "ServiceUnavailable",
    "ShuttingDown",
    "Unauthorized",
    "WorkerDied",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The clients pull in httpx; worker processes import podium and never need it.
    if name in ("AsyncClient", "Client"):
        from podium import client

        return getattr(client, name)
    raise AttributeError(f"module 'podium' has no attribute {name!r}")
