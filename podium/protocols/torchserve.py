"""The TorchServe protocol: a TorchServe handler sees more of HTTP than a payload.

Front end side: ``request`` keeps the raw body, its content type, the request headers (in
the client's case) and the query string (``HttpRequest``); the handler's adapter
(``podium.compat.torchserve.handler``) decodes them in the worker the way TorchServe does.
Worker side: the adapter answers with finished ``Response`` values (status and headers set
by the handler), which pass through; anything else is encoded like the native protocol.
"""

from __future__ import annotations

from collections.abc import Iterable

from podium.protocols.native import NativeCodec
from podium.types import InferenceRequest

TAG = "torchserve"
HANDLER = "torchserve"
"""The built-in handler whose models speak this protocol."""


def request(
    body: bytes,
    content_type: str,
    headers: Iterable[tuple[bytes, bytes]],
    query: str,
    explain: bool = False,
) -> InferenceRequest:
    """What a TorchServe handler sees of one HTTP request (``explain``: an explanation was
    asked for, TorchServe's ``/explanations`` route)."""
    fields = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
    if explain:
        fields += (("explain", "True"),)
    return InferenceRequest(TAG, (body, content_type, fields, query))


def describe_request() -> InferenceRequest:
    """The request TorchServe's describe API sends a handler (``describe_handle``)."""
    return InferenceRequest(TAG, (b"", "", (("describe", "True"),), ""))


class TorchServeCodec(NativeCodec):
    """The adapter's ``Response`` values pass through ``encode_response`` as they are;
    anything else, and errors, are encoded as the native protocol does."""

    tag = TAG


CODEC = TorchServeCodec()
