"""The worker's side of a codec: payload → handler input, handler value → response."""

from __future__ import annotations

from typing import Any, ClassVar

from podium.types import InferenceResponse


class Model:
    """What a codec may say about the model that answered (V2 answers name it)."""

    __slots__ = ("name", "version")

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version


class Codec:
    """Decodes requests for a handler and encodes its answers, for one protocol."""

    tag: ClassVar[str]
    streams: ClassVar[bool] = True
    """Whether a handler's streamed parts reach the client (else only its last value)."""

    def decode(self, payload: Any) -> Any:
        """What the handler sees of one request's payload."""
        return payload

    def encode(self, value: Any, payload: Any, model: Model) -> InferenceResponse:
        """The handler's answer to one request (``payload``) in this protocol; an error
        answer (``error``) when it cannot be encoded."""
        raise NotImplementedError

    def error(self, error: BaseException, payload: Any, debug: bool) -> InferenceResponse:
        """An error answer to one request."""
        raise NotImplementedError
