"""The vocabulary every layer shares: a typed request on its way to a handler, and the
answer on its way back.

A request carries its protocol (``codec``, a tag of ``podium.protocols``): the front end
that parsed it chose it, and the worker encodes the handler's answer for the same protocol.
Nothing here is HTTP: a status is a number every protocol maps (gRPC to its codes).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class InferenceRequest(NamedTuple):
    """One request for a model: its codec's tag and what that codec parsed.

    The payload is, by codec: ``json`` parsed JSON or the raw ``bytes``; ``torchserve`` an
    ``HttpRequest``; ``v2`` and ``v2-grpc`` a ``podium.protocols.v2.V2Request``."""

    codec: str
    payload: Any


class InferenceResponse(NamedTuple):
    """One answer: status, content type, encoded body and any further headers (metadata)."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Response = InferenceResponse
"""The name handlers know (the torchserve handler answers with one)."""

Answer = tuple[int, str, bytes, tuple[tuple[str, str], ...]]
"""An ``InferenceResponse`` as the front end receives it off the wire: a plain tuple."""

HttpRequest = tuple[bytes, str, tuple[tuple[str, str], ...], str]
"""A request for a TorchServe handler, which sees more of HTTP than a payload: the raw body,
its content type, the request headers and the query string. Plain tuple, cheap to pickle."""
