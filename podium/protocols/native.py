"""The native protocol: JSON (or raw bytes) in, JSON (or bytes) out.

Front end side: ``request`` parses a body into an ``InferenceRequest`` (refusing malformed
or too deeply nested JSON with 400). Worker side: ``CODEC`` encodes a handler's answer:
``bytes`` as they are, anything else as JSON, numpy values included; NaN and infinities,
which JSON cannot carry, are refused rather than written as ``null``.
"""

from __future__ import annotations

import json
import math
import re
import traceback
from typing import Any

import numpy
import orjson

from podium.errors import HandlerError, InvalidRequest, PodiumError
from podium.protocols.codec import Codec, Model
from podium.types import Answer, InferenceRequest, InferenceResponse, Response

JSON = "application/json"
BINARY = "application/octet-stream"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
TAG = "json"


def request(body: bytes, content_type: str) -> InferenceRequest:
    """A body as a native request: parsed JSON, or the bytes."""
    return InferenceRequest(TAG, parse_payload(body, content_type))


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a JSON body. Tensors need a few
levels; a few hundred would overflow the recursion of every later step (pickling the batch
for its worker, the handler's own walk), so deeper bodies are refused while parsing."""

LONG_NUMBER = re.compile(rb"(?<![\d.eE])\d{19}")
"""A digit run that may be an integer beyond 64 bits, which orjson turns into a float (not
the digits of a float's fraction or exponent: those are left to orjson)."""


def parse_payload(body: bytes, content_type: str) -> Any:
    """JSON bodies become Python values; any other body stays ``bytes``.

    A body without a JSON content type is still read as JSON when it parses (``curl -d``
    sends form encoding by default), else it is passed on as bytes.
    """
    if "json" in content_type:
        return parse_json(body)
    if content_type in ("", "application/x-www-form-urlencoded") and body[:1] in b'{["':
        try:
            value = _loads(body)
        except (ValueError, RecursionError):
            return body
        _check_nesting(body, value)
        return value
    return body


def parse_json(body: bytes) -> Any:
    """A JSON body as Python values, refused (400) when malformed or nested too deep.

    Integers past 64 bits stay exact: such bodies (rare) go through the standard library's
    parser, since orjson would make floats of them."""
    try:
        value = _loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"Body is not valid JSON: {error}") from None
    _check_nesting(body, value)
    return value


def _loads(body: bytes) -> Any:
    if LONG_NUMBER.search(body) is None:
        return orjson.loads(body)

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _check_nesting(body: bytes, value: Any) -> None:
    # Depth is at most the number of opening brackets: most bodies need no walk.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        check_depth(value)


def check_depth(value: Any) -> None:
    """Raise ``InvalidRequest`` if arrays and objects nest deeper than ``MAX_JSON_DEPTH``.

    Walks one level at a time; a list of numbers is scanned at C speed (``map(type)``)."""
    level = [value] if type(value) in (list, dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(f"Body is JSON nested deeper than {MAX_JSON_DEPTH} levels")
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            kinds = set(map(type, items))
            if list in kinds or dict in kinds:
                below += [item for item in items if type(item) in (list, dict)]
        level = below


def encode_response(value: Any) -> Response:
    """One handler response → status, content type and body (an error answer when the
    value cannot be encoded)."""
    if isinstance(value, BaseException):
        return encode_error(value, debug=False)
    try:
        return encode_value(value)
    except NonFinite as error:
        return encode_error(HandlerError(f"response is not valid JSON: {error}"), False)
    except TypeError as error:
        return encode_error(HandlerError(f"response is not JSON-serialisable: {error}"), False)


def encode_value(value: Any) -> Response:
    """``bytes`` as they are, a ``Response`` as it is, anything else as JSON (raises
    ``TypeError`` when it is not JSON-serialisable)."""
    if type(value) is Response:
        return value  # already encoded (the torchserve handler sets status and headers)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(200, BINARY, bytes(value))
    try:
        body = orjson.dumps(value, option=JSON_OPTIONS)
    except TypeError:
        body = exact_json(value)  # integers past 64 bits; raises if still not JSON
    # orjson writes NaN and infinities as null: refuse them rather than answer wrongly.
    if b"null" in body and not all_finite(value):
        raise NonFinite("the answer holds NaN or Infinity, which JSON cannot carry")
    return Response(200, JSON, body)


class NonFinite(ValueError):
    """A number in an answer that JSON cannot carry."""


def exact_json(value: Any) -> bytes:
    """JSON through the standard library, which writes integers of any size exactly."""

    def default(item: Any) -> Any:
        if hasattr(item, "tolist"):  # numpy arrays and scalars
            return item.tolist()
        raise TypeError(f"Type is not JSON serializable: {type(item).__name__}")

    try:
        text = json.dumps(value, default=default, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise NonFinite(str(error)) from None
    return text.encode()


def all_finite(value: Any) -> bool:
    """Whether every float in ``value`` (numpy arrays included) is finite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list | tuple):
            stack += item
        elif (
            hasattr(item, "dtype")
            and getattr(item.dtype, "kind", "") in "fc"
            and not bool(numpy.isfinite(item).all())
        ):
            return False
    return True


def encode_error(error: BaseException, debug: bool) -> Response:
    if not isinstance(error, PodiumError):
        message = f"{type(error).__name__}: {error}"
        if debug:
            message += "\n" + "".join(traceback.format_exception(error))
        error = HandlerError(message)
    return Response(error.status, JSON, orjson.dumps(error.body()))


class NativeCodec(Codec):
    tag = TAG

    def decode_all(self, payloads: list[Any]) -> list[Any]:
        return payloads  # the handler sees each payload as it is

    def encode_all(self, values: list[Any], payloads: list[Any], model: Model) -> list[Answer]:
        return [encode_response(value) for value in values]

    def encode(self, value: Any, payload: Any, model: Model) -> InferenceResponse:
        return encode_response(value)

    def error(self, error: BaseException, payload: Any, debug: bool) -> InferenceResponse:
        return encode_error(error, debug)


CODEC = NativeCodec()
