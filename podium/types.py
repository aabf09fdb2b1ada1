"""The vocabulary every layer shares: what a request for a TorchServe handler carries, and
what an answer is on its way back."""

from __future__ import annotations

from typing import NamedTuple


class Response(NamedTuple):
    """One answer: HTTP status, content type, encoded body and any further headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Answer = tuple[int, str, bytes, tuple[tuple[str, str], ...]]
"""A ``Response`` as the front end receives it: a plain tuple."""

HttpRequest = tuple[bytes, str, tuple[tuple[str, str], ...], str]
"""A request for a TorchServe handler, which sees more of HTTP than a payload: the raw body,
its content type, the request headers and the query string. Plain tuple, cheap to pickle."""
