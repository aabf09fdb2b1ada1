"""Protocol codecs: how a request of one protocol becomes what a handler sees, and how the
handler's answer becomes that protocol's response.

Each codec is pure: no sockets, no event loop. A front end parses its transport (HTTP, gRPC)
and calls its codec's ``request`` side to build an ``InferenceRequest`` tagged with the
codec; the worker looks the tag up here (``codec``) to decode the payload for the handler
and to encode each answer (or error) for the protocol that asked.

    json         native: parsed JSON or raw bytes in, JSON (or bytes) out   (``native``)
    torchserve   a TorchServe handler's view of HTTP                        (``torchserve``)
    v2           the Open Inference Protocol (KServe V2) over REST          (``v2``)
    v2-grpc      the same over gRPC (protobuf messages)                      (``v2.grpc``)
"""

from __future__ import annotations

import importlib

from podium.protocols.codec import Codec

NATIVE = "json"
TORCHSERVE = "torchserve"
V2 = "v2"
V2_GRPC = "v2-grpc"

_MODULES = {
    NATIVE: "podium.protocols.native",
    TORCHSERVE: "podium.protocols.torchserve",
    V2: "podium.protocols.v2.rest",
    V2_GRPC: "podium.protocols.v2.grpc",
}
_codecs: dict[str, Codec] = {}


def codec(tag: str) -> Codec:
    """The codec for a tag (its module is imported on first use: gRPC's only with gRPC)."""
    found = _codecs.get(tag)
    if found is None:
        module = _MODULES.get(tag)
        if module is None:
            raise KeyError(f"no codec {tag!r}")
        found = _codecs[tag] = importlib.import_module(module).CODEC
    return found


__all__ = ["NATIVE", "TORCHSERVE", "V2", "V2_GRPC", "Codec", "codec"]
