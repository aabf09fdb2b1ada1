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
    ServiceUnavailable,
    ShuttingDown,
    Unauthorized,
    WorkerDied,
)
from podium.handler import Context, Handler
from podium.version import __version__

if TYPE_CHECKING:
    from podium.client import Client


# The errors are those a handler raises (InvalidInput) and those the client raises for an
# error answer, rebuilt from its JSON "type".
__all__ = [
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
    "ServiceUnavailable",
    "ShuttingDown",
    "Unauthorized",
    "WorkerDied",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The client pulls in httpx; worker processes import podium and never need it.
    if name == "Client":
        from podium.client import Client

        return Client
    raise AttributeError(f"module 'podium' has no attribute {name!r}")
