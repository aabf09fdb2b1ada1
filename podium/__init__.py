"""Podium: put a trained model behind a fast, reliable HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.errors import InvalidInput, PodiumError
from podium.handler import Context, Handler
from podium.version import __version__

if TYPE_CHECKING:
    from podium.client import Client


__all__ = ["Client", "Context", "Handler", "InvalidInput", "PodiumError", "__version__"]


def __getattr__(name: str) -> Any:
    # The client pulls in httpx; worker processes import podium and never need it.
    if name == "Client":
        from podium.client import Client

        return Client
    raise AttributeError(f"module 'podium' has no attribute {name!r}")
