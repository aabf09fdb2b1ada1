"""TorchServe's request and response formats, as its handlers expect them.

A request reaches a TorchServe handler as a dict of inputs (``decode_request``): the body
under ``"body"`` (parsed JSON for ``application/json``, ``str`` for ``text/*``, else a
``bytearray``), form fields (multipart or urlencoded) and query parameters by name, and its
headers beside it. Each answer is encoded as TorchServe does (``encode``): ``bytes`` and
``str`` as they are, anything else as JSON, with the status and headers the handler set.
"""

from __future__ import annotations

import io
import re
import sys
from typing import Any
from urllib.parse import parse_qsl

import orjson

from podium.compat.torchserve.context import Headers, RequestProcessor
from podium.errors import InvalidInput
from podium.types import Response

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
MAX_FORM_PARTS = 1000
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def decode_request(request: Any) -> tuple[dict[str, Any], Headers]:
    """One request as TorchServe hands it to a handler: its inputs and its headers.

    ``request`` is a ``HttpRequest`` from the front end, or a plain value (a warm-up
    request from the manifest), which becomes the body.
    """
    headers = Headers()
    if not (type(request) is tuple and len(request) == 4):
        return {"body": request}, headers
    body, content_type, http_headers, query = request
    values: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values[name] = bytearray(value.encode())
        headers[name.lower()] = {"content-type": ""}
    for name, part_type, content in form_fields(body, content_type):
        values[name] = decode_value(content, part_type)
        headers[name.lower()] = {"content-type": part_type}
    for name, value in http_headers:
        headers[name] = value
    return values, headers


def form_fields(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """The request's inputs as (name, content type, bytes): form fields, or one ``body``."""
    mime = content_type.partition(";")[0].strip().lower()
    if mime == "multipart/form-data":
        return multipart_fields(body, content_type)
    if mime == "application/x-www-form-urlencoded" and body[:1] not in (b"{", b"["):
        text = body.decode("latin-1")
        return [
            (name, "", value.encode("latin-1"))
            for name, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1")
        ]
    if mime == "application/x-www-form-urlencoded":
        mime = JSON  # curl -d '{...}' without a content type: JSON, as Podium reads it
    return [("body", mime, body)]


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInput("multipart body without a boundary")
    fields: list[tuple[str, str, bytes]] = []
    part: dict[str, Any] = {}

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, data=bytearray(), field=b"", value=b"")
        if len(fields) >= MAX_FORM_PARTS:
            raise InvalidInput(f"more than {MAX_FORM_PARTS} form fields")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][part["field"].lower()] = part["value"]
        part["field"], part["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"] += data[start:end]

    def on_part_end() -> None:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        kind = part["headers"].get(b"content-type", b"").decode("latin-1").lower()
        fields.append((name, kind.partition(";")[0].strip(), bytes(part["data"])))

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except InvalidInput:
        raise
    except Exception as error:
        raise InvalidInput(f"malformed multipart body: {error}") from None
    return fields


def decode_value(content: bytes, content_type: str) -> Any:
    """JSON is parsed and text decoded, as TorchServe does; anything else (or anything
    that fails to decode) stays a bytearray."""
    if content_type == JSON:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            return bytearray(content)
    if content_type.startswith("text"):
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return bytearray(content)
    return bytearray(content)


def encode(value: Any, processor: RequestProcessor) -> Response:
    """One handler output → status, content type, body and headers."""
    status = processor.get_response_status_code()
    content_type: str | None = None
    extra: list[tuple[str, str]] = []
    for name, header in processor.get_response_headers().items():
        if not (isinstance(name, str) and HEADER_NAME.match(name)) or not _safe(header):
            return error_answer(500, "HandlerError", f"invalid response header {name!r}")
        if name.lower() == "content-type":
            content_type = str(header)
        elif name.lower() != "content-length":
            extra.append((name, str(header)))
    if not (isinstance(status, int) and 100 <= status <= 599):
        return error_answer(500, "HandlerError", f"invalid response status {status!r}")
    if isinstance(value, bytes | bytearray | memoryview):
        body, default = bytes(value), BINARY
    elif isinstance(value, str):
        body, default = value.encode(), TEXT
    elif _is_tensor(value):
        body, default = _tensor_bytes(value), BINARY
    else:
        try:
            body, default = orjson.dumps(value, option=JSON_OPTIONS), JSON
        except TypeError as error:
            return error_answer(500, "HandlerError", f"response is not JSON-serialisable: {error}")
    return Response(status, content_type or default, body, tuple(extra))


def _safe(value: Any) -> bool:
    text = str(value)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return "\r" not in text and "\n" not in text and "\x00" not in text


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_bytes(value: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def error_answer(code: int, kind: str, message: str) -> Response:
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    body = orjson.dumps({"code": status, "type": kind, "message": message})
    return Response(status, JSON, body)
