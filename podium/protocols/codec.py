"""The worker's side of a codec: payload → handler input, handler value → response."""

from __future__ import annotations

from typing import Any, ClassVar

from podium.types import Answer, InferenceResponse


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

    def decode_all(self, payloads: list[Any]) -> list[Any]:
        """``decode`` for each payload of a batch (a codec whose handlers see the payload as
        it is returns the list itself)."""
        return [self.decode(payload) for payload in payloads]

    def encode_all(self, values: list[Any], payloads: list[Any], model: Model) -> list[Answer]:
        """``encode`` for each answer of a batch and the request it answers."""
        encode = self.encode
        return [
            encode(value, payload, model) for value, payload in zip(values, payloads, strict=True)
        ]

    def encode(self, value: Any, payload: Any, model: Model) -> InferenceResponse:
        """The handler's answer to one request (``payload``) in this protocol; an error
        answer (``error``) when it cannot be encoded."""
        raise NotImplementedError

    def error(self, error: BaseException, payload: Any, debug: bool) -> InferenceResponse:
        """An error answer to one request."""
        raise NotImplementedError
