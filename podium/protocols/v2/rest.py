"""The Open Inference Protocol (KServe V2) over REST, with the binary tensor data extension.

Front end side: ``decode_request`` turns a body (and ``parse_header_length`` of its header)
into a ``V2Request``, refusing (400) any request that is malformed, before it is queued;
``error_body`` writes the protocol's error body for the front end's own refusals.
Worker side: ``CODEC`` hands the handler its input (``tensors.handler_input``) and encodes
its answer as output tensors, or an error.

A request body is JSON, or, when the ``Inference-Header-Content-Length`` header is set, that
many bytes of JSON followed by a binary section: each input whose parameters carry
``binary_data_size`` takes its data from there, in input order, and the sizes must add up
to the section exactly. An answer is JSON unless an output is asked for as binary (its own
``binary_data`` parameter, else the request's ``binary_data_output``): those go after the
JSON, which then says its length in the same header. NaN and infinities cannot be JSON, so
an output holding them must be asked for as binary (else the answer is a 500 that says so).

Nothing is allocated from a declared shape before it is checked against the data present:
a shape of a trillion elements with two values in ``data`` costs what two values cost.
"""

from __future__ import annotations

import itertools
import traceback
from typing import Any

import numpy as np
import orjson

from podium.errors import HandlerError, InvalidRequest, PodiumError
from podium.protocols.codec import Codec, Model
from podium.protocols.native import MAX_JSON_DEPTH, check_depth
from podium.protocols.v2 import DATATYPES, RequestedOutput, Tensor, V2Request
from podium.protocols.v2.answers import answer_tensors
from podium.protocols.v2.tensors import (
    check_shape,
    from_list,
    from_raw,
    handler_input,
    to_raw,
)
from podium.types import InferenceResponse

TAG = "v2"
HEADER_LENGTH = "Inference-Header-Content-Length"
"""The header that gives the length of a body's JSON part when binary data follows it."""
JSON = "application/json"
BINARY = "application/octet-stream"
UNSUPPORTED = ("shared_memory_region", "classification")
"""Parameters of extensions Podium does not implement: refused rather than ignored, since
ignoring them would answer something other than what was asked."""

_DATATYPE_NAMES = ", ".join(DATATYPES)


# --- requests -------------------------------------------------------------------------


def decode_request(body: bytes, header_length: int | None) -> V2Request:
    """A REST inference request as a ``V2Request``: JSON, or with ``header_length`` (the
    ``Inference-Header-Content-Length`` header) that much JSON then binary tensor data.

    Raises ``InvalidRequest`` (400) with a message naming what is wrong."""
    header, binary = _split(body, header_length)
    document = parse_header(header)
    if type(document) is not dict:
        raise InvalidRequest('the body must be a JSON object with "inputs"')
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidRequest('"id" must be a string')
    parameters = _parameters(document.get("parameters"), "the request")
    binary_output = _flag(parameters.pop("binary_data_output", None), "binary_data_output")
    return V2Request(
        request_id,
        _inputs(document.get("inputs"), binary),
        _outputs(document.get("outputs")),
        parameters or None,
        binary_output or False,
    )


def parse_header(header: bytes) -> Any:
    """The JSON part of a body, refused (400) when malformed or nested too deep.

    orjson reads every V2 number exactly (integers up to 64 bits; larger ones, which no
    datatype holds, as floats that are then refused), so unlike ``native.parse_json`` this
    never needs the standard library's slower parser: long runs of digits are common here,
    in the fractions of small floats."""
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"Body is not valid JSON: {error}") from None
    # Depth is at most the number of opening brackets: most bodies need no walk.
    if header.count(b"[") + header.count(b"{") > MAX_JSON_DEPTH:
        check_depth(document)
    return document


def parse_header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header's value as ``decode_request`` takes
    it: None when absent, else a non-negative integer (``InvalidRequest`` otherwise)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InvalidRequest(f"{HEADER_LENGTH} must be a number of bytes, got {value[:40]!r}")
    return int(text)


def _split(body: bytes, header_length: int | None) -> tuple[bytes, memoryview | None]:
    if header_length is None:
        return body, None
    if type(header_length) is not int or not 0 <= header_length <= len(body):
        raise InvalidRequest(
            f"{HEADER_LENGTH} is {header_length}, but the body has {len(body)} bytes"
        )
    return body[:header_length], memoryview(body)[header_length:]


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise InvalidRequest(f'{where}: "parameters" must be an object')
    for name in UNSUPPORTED:
        if name in value:
            raise InvalidRequest(f'{where}: parameter "{name}" is not supported')
    return dict(value)


def _flag(value: Any, name: str) -> bool | None:
    if value is not None and type(value) is not bool:
        raise InvalidRequest(f'parameter "{name}" must be true or false')
    return value


def _inputs(value: Any, binary: memoryview | None) -> tuple[Tensor, ...]:
    if type(value) is not list or not value:
        raise InvalidRequest('"inputs" must be a non-empty list of tensors')
    tensors: list[Tensor] = []
    names: set[str] = set()
    offset = 0
    for index, entry in enumerate(value):
        name = _name(entry, f'"inputs"[{index}]', names)
        datatype = entry.get("datatype")
        if type(datatype) is not str or datatype not in DATATYPES:
            raise InvalidRequest(
                f'input "{name}": datatype {datatype!r} is not one of {_DATATYPE_NAMES}'
            )
        if "shape" not in entry:
            raise InvalidRequest(f'input "{name}" has no "shape"')
        shape = check_shape(name, entry["shape"])
        parameters = _parameters(entry.get("parameters"), f'input "{name}"')
        size = parameters.pop("binary_data_size", None)
        if size is None:
            data = _json_data(entry, name, datatype, shape)
        else:
            raw = _binary_part(binary, offset, size, name, "data" in entry)
            data = from_raw(raw, name, datatype, shape)
            offset += len(raw)
        tensors.append(Tensor(name, datatype, shape, data, parameters or None))
    if binary is not None and offset != len(binary):
        raise InvalidRequest(
            f"the binary section has {len(binary)} bytes, but the inputs' "
            f"binary_data_size parameters add up to {offset}"
        )
    return tuple(tensors)


def _name(entry: Any, where: str, seen: set[str]) -> str:
    if type(entry) is not dict:
        raise InvalidRequest(f"{where} must be an object")
    name = entry.get("name")
    if type(name) is not str or not name:
        raise InvalidRequest(f'{where} needs a "name", a non-empty string')
    if name in seen:
        raise InvalidRequest(f'{where}: the name "{name}" is used twice')
    seen.add(name)
    return name


def _json_data(
    entry: dict[str, Any], name: str, datatype: str, shape: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    if "data" not in entry:
        raise InvalidRequest(f'input "{name}" has neither "data" nor a binary_data_size')
    data = entry["data"]
    if type(data) is not list:
        raise InvalidRequest(f'input "{name}": "data" must be a list')
    flat, types = _flattened(data, name)
    return from_list(flat, name, datatype, shape, types=types)


def _flattened(data: list[Any], name: str) -> tuple[list[Any], set[type]]:
    """Nested data ([[1, 2], [3, 4]]) in row-major order, and the types of its values; flat
    data as it is. The spec allows both; levels that mix lists and values are refused."""
    types = set(map(type, data))
    while list in types:
        if len(types) > 1:
            raise InvalidRequest(f'input "{name}": "data" mixes lists and values at one level')
        data = list(itertools.chain.from_iterable(data))
        types = set(map(type, data))
    return data, types


def _binary_part(
    binary: memoryview | None, offset: int, size: Any, name: str, has_data: bool
) -> memoryview:
    if binary is None:
        raise InvalidRequest(
            f'input "{name}": binary_data_size without binary data (the body needs the '
            f"{HEADER_LENGTH} header)"
        )
    if has_data:
        raise InvalidRequest(f'input "{name}" has both "data" and a binary_data_size')
    if type(size) is not int or size < 0:
        raise InvalidRequest(f'input "{name}": binary_data_size must be an integer >= 0')
    if size > len(binary) - offset:
        raise InvalidRequest(
            f'input "{name}": binary_data_size is {size}, but only {len(binary) - offset} '
            "bytes of binary data are left (truncated body?)"
        )
    return binary[offset : offset + size]


def _outputs(value: Any) -> tuple[RequestedOutput, ...] | None:
    if value is None:
        return None
    if type(value) is not list:
        raise InvalidRequest('"outputs" must be a list of objects with a "name"')
    outputs: list[RequestedOutput] = []
    names: set[str] = set()
    for index, entry in enumerate(value):
        name = _name(entry, f'"outputs"[{index}]', names)
        parameters = _parameters(entry.get("parameters"), f'output "{name}"')
        binary = _flag(parameters.pop("binary_data", None), "binary_data")
        outputs.append(RequestedOutput(name, binary, parameters or None))
    # An empty list asks for nothing in particular: every output is answered.
    return tuple(outputs) or None


# --- answers --------------------------------------------------------------------------


def encode_answer(tensors: list[Tensor], request: V2Request, model: Model) -> InferenceResponse:
    """Output tensors as a REST answer: JSON, then the binary outputs' bytes, if any."""
    binary_of = {output.name: output.binary for output in request.outputs or ()}
    entries: list[dict[str, Any]] = []
    parts: list[bytes] = []
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = dict(tensor.parameters or {})
        binary = binary_of.get(tensor.name)
        if binary is None:
            binary = request.binary_output
        if binary:
            raw = to_raw(tensor)
            parameters["binary_data_size"] = len(raw)
            parts.append(raw)
        else:
            entry["data"] = json_data(tensor)
        if parameters:
            entry["parameters"] = parameters
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model.name}
    if model.version:
        document["model_version"] = model.version
    if request.id is not None:
        document["id"] = request.id
    document["outputs"] = entries
    try:
        header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as error:
        raise HandlerError(f"answer is not JSON-serialisable: {error}") from None
    if not parts:
        return InferenceResponse(200, JSON, header)
    headers = ((HEADER_LENGTH, str(len(header))),)
    return InferenceResponse(200, BINARY, header + b"".join(parts), headers)


def json_data(tensor: Tensor) -> Any:
    """A tensor's data as a flat JSON list (a numpy array orjson writes at C speed);
    ``HandlerError`` for what JSON cannot carry: NaN, infinities, bytes that are not text."""
    hint = 'ask for it as binary data (output parameter "binary_data": true)'
    if tensor.datatype == "BYTES":
        texts: list[str] = []
        for element in np.asarray(tensor.data, dtype=np.object_).ravel().tolist():
            if isinstance(element, bytes):
                try:
                    element = element.decode("utf-8")
                except UnicodeDecodeError:
                    raise HandlerError(
                        f'output "{tensor.name}" holds bytes that are not UTF-8, which JSON '
                        f"cannot carry; {hint}"
                    ) from None
            if not isinstance(element, str):
                raise HandlerError(f'output "{tensor.name}": a BYTES element is not text')
            texts.append(element)
        return texts
    flat = np.ascontiguousarray(tensor.data, dtype=DATATYPES[tensor.datatype]).ravel()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        raise HandlerError(
            f'output "{tensor.name}" holds NaN or Infinity, which JSON cannot carry; {hint}'
        )
    return flat


def error_body(message: str) -> bytes:
    """The protocol's error body: ``{"error": message}``."""
    return orjson.dumps({"error": message})


def encode_error(error: BaseException, debug: bool) -> InferenceResponse:
    """An error answer: its status (500 for anything not a ``PodiumError``), its headers
    (``Retry-After``) and ``{"error": message}``; with ``debug`` the traceback too."""
    if not isinstance(error, PodiumError):
        message = f"{type(error).__name__}: {error}"
        if debug:
            message += "\n" + "".join(traceback.format_exception(error))
        error = HandlerError(message)
    headers = tuple(error.headers().items())
    return InferenceResponse(error.status, JSON, error_body(error.message), headers)


class RestCodec(Codec):
    """The worker's side of V2 REST: arrays in, output tensors out; never streams (a V2
    answer is one response)."""

    tag = TAG
    streams = False

    def decode(self, payload: V2Request) -> Any:
        return handler_input(payload)

    def encode(self, value: Any, payload: V2Request, model: Model) -> InferenceResponse:
        if isinstance(value, BaseException):
            return encode_error(value, debug=False)
        if type(value) is InferenceResponse:
            return value  # the handler encoded its answer itself
        try:
            return encode_answer(answer_tensors(value, payload), payload, model)
        except PodiumError as error:
            return encode_error(error, debug=False)

    def error(self, error: BaseException, payload: V2Request, debug: bool) -> InferenceResponse:
        return encode_error(error, debug)


CODEC = RestCodec()
