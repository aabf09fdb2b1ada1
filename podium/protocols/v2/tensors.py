"""V2 tensors between the wire and a handler, shared by the REST codec (JSON and the binary
tensor data extension) and the gRPC codec (typed contents and raw contents).

Wire → array: ``check_shape`` refuses a shape before anything is allocated from it, and
``from_raw`` reads raw little-endian bytes (the binary extension, gRPC's raw contents).
Array → wire: ``to_raw``.

What a handler sees (``handler_input``): the one input's value, or ``{name: value}`` when
the request has several. Numbers are a numpy array of the datatype, in the declared shape;
BYTES is a nested list of ``str`` shaped like the tensor (``bytes`` where an element is not
UTF-8), since handlers that take text expect what they get over JSON: ``["a review"]``.
What it answers becomes tensors in ``answers``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from podium.errors import HandlerError, InvalidRequest
from podium.protocols.v2 import DATATYPES, Tensor, V2Request

MAX_ELEMENTS = 2**31
"""Most elements one tensor may declare. The data must be present anyway (its size is
checked against the shape before anything is allocated); this bounds the arithmetic."""

MAX_RANK = 32
"""Most dimensions a tensor may have (numpy's own limit is 64)."""

_LENGTH = struct.Struct("<I")


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A declared shape as a tuple, refused (``InvalidRequest``) unless every dimension is
    an integer ≥ 0 (never a bool) and the element count stays within ``MAX_ELEMENTS``.

    Zero dimensions do not lift the bound on the others: numpy refuses ``(0, 2**62)`` too.
    """
    if isinstance(shape, str | bytes | Mapping) or not isinstance(shape, Iterable):
        raise InvalidRequest(f'input "{name}": "shape" must be a list of integers')
    dims = tuple(shape)
    if len(dims) > MAX_RANK:
        raise InvalidRequest(f'input "{name}": {len(dims)} dimensions, more than {MAX_RANK}')
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise InvalidRequest(
                f'input "{name}": "shape" must be a list of integers >= 0, got {list(dims)}'
            )
    if math.prod(dim for dim in dims if dim) > MAX_ELEMENTS:
        raise InvalidRequest(
            f'input "{name}": shape {list(dims)} is over the limit of {MAX_ELEMENTS} elements'
        )
    return dims


def element_count(shape: tuple[int, ...]) -> int:
    """How many elements a checked shape holds (1 for a scalar's empty shape)."""
    return math.prod(shape)


_FLOATS = frozenset({int, float})
_ALLOWED_TYPES: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool}),
    "BYTES": frozenset({str, bytes}),
    **{datatype: frozenset({int}) for datatype in DATATYPES if "INT" in datatype},
    **{datatype: _FLOATS for datatype in ("FP16", "FP32", "FP64")},
}
"""The Python types each datatype's values may have: JSON ``true``/``false`` only for BOOL,
integers (never floats, never booleans) for the integer types, either for floats."""


def from_list(
    values: Sequence[Any],
    name: str,
    datatype: str,
    shape: tuple[int, ...],
    *,
    types: set[type] | None = None,
) -> np.ndarray[Any, Any]:
    """Flat Python values (JSON data, gRPC typed contents) → an array of ``shape``, refused
    (``InvalidRequest``) unless there are exactly as many as the shape holds and each fits
    the datatype: its type (``_ALLOWED_TYPES``) and its range (200 is no INT8, 1e300 no FP32).

    BYTES values are ``str`` (UTF-8 encoded here) or ``bytes``. ``types``, the set of the
    values' types, spares a second scan of a long list when the caller has it already."""
    dims = check_shape(name, shape)
    count = element_count(dims)
    allowed = _ALLOWED_TYPES.get(datatype)
    if allowed is None:
        raise InvalidRequest(f'input "{name}": unknown datatype {datatype!r}')
    if len(values) != count:
        raise InvalidRequest(
            f'input "{name}": {len(values)} values, expected {count} for shape {list(dims)}'
        )
    if types is None:
        types = set(map(type, values))
    if not types <= allowed:
        wrong = next(value for value in values if type(value) not in allowed)
        raise InvalidRequest(f'input "{name}": {datatype} data holds {_described(wrong)}')
    if datatype == "BYTES":
        return _encoded(values, name).reshape(dims)
    dtype = DATATYPES[datatype]
    if allowed is not _FLOATS and datatype != "BOOL" and values:
        info = np.iinfo(dtype)
        low, high = min(values), max(values)
        if low < info.min or high > info.max:
            wrong = low if low < info.min else high
            raise InvalidRequest(f'input "{name}": {wrong} is out of range for {datatype}')
    try:
        if datatype in ("FP16", "FP32"):
            with np.errstate(over="raise"):  # 1e300 would silently become inf
                array = np.asarray(values, dtype)
        else:
            array = np.asarray(values, dtype)
    except (OverflowError, FloatingPointError):
        raise InvalidRequest(f'input "{name}": a value is out of range for {datatype}') from None
    return array.reshape(dims)


def _encoded(values: Sequence[Any], name: str) -> np.ndarray[Any, Any]:
    elements = np.empty(len(values), dtype=np.object_)
    try:
        elements[:] = [value.encode() if type(value) is str else value for value in values]
    except UnicodeEncodeError:
        raise InvalidRequest(f'input "{name}": a string is not valid Unicode') from None
    return elements


def _described(value: Any) -> str:
    """A value as the client wrote it in JSON, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    kinds: dict[type, str] = {dict: "an object", list: "a list"}
    kind = kinds.get(type(value))
    return kind or f"a {type(value).__name__}"


def from_raw(
    raw: bytes | memoryview, name: str, datatype: str, shape: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    """Raw little-endian bytes (BYTES: 4-byte length-prefixed elements) → an array of
    ``shape``; ``InvalidRequest`` when their size does not match the shape.

    Fixed-size data is not copied: the array reads the body's buffer (and may then be
    read-only)."""
    dims = check_shape(name, shape)
    count = element_count(dims)
    if datatype == "BYTES":
        return _bytes_elements(memoryview(raw), name, dims, count)
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidRequest(f'input "{name}": unknown datatype {datatype!r}')
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidRequest(
            f'input "{name}": {len(raw)} bytes of binary data, expected {expected} '
            f"for shape {list(dims)} of {datatype}"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, np.uint8)
        if octets.size and int(octets.max()) > 1:
            raise InvalidRequest(f'input "{name}": BOOL binary data holds bytes other than 0, 1')
        return octets.view(np.bool_).reshape(dims)
    array = np.frombuffer(raw, dtype.newbyteorder("<"))
    if not array.dtype.isnative:  # a big-endian host: numpy would compute on swapped views
        array = array.astype(dtype)
    return array.reshape(dims)


def _bytes_elements(
    raw: memoryview, name: str, shape: tuple[int, ...], count: int
) -> np.ndarray[Any, Any]:
    # Each element takes at least its 4-byte length: a shape that asks for more elements
    # than that allows is refused before the object array is made.
    if count * _LENGTH.size > len(raw):
        raise InvalidRequest(
            f'input "{name}": {len(raw)} bytes of BYTES data cannot hold the {count} '
            f"elements of shape {list(shape)}"
        )
    elements = np.empty(count, dtype=np.object_)
    offset, end = 0, len(raw)
    for index in range(count):
        if offset + _LENGTH.size > end:
            raise InvalidRequest(
                f'input "{name}": BYTES data ends after {index} of {count} elements'
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > end:
            raise InvalidRequest(
                f'input "{name}": BYTES element {index} claims {length} bytes, '
                f"{end - offset} are left"
            )
        elements[index] = bytes(raw[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidRequest(
            f'input "{name}": {end - offset} bytes of BYTES data left after the {count} '
            f"elements of shape {list(shape)}"
        )
    return elements.reshape(shape)


def to_raw(tensor: Tensor) -> bytes:
    """A tensor's data as raw little-endian bytes (BYTES: each element's 4-byte length, then
    the element; ``str`` elements UTF-8 encoded)."""
    if tensor.datatype == "BYTES":
        parts: list[bytes] = []
        for element in np.asarray(tensor.data, dtype=np.object_).ravel().tolist():
            octets = _octets(element, tensor.name)
            parts += (_LENGTH.pack(len(octets)), octets)
        return b"".join(parts)
    dtype = DATATYPES[tensor.datatype]
    if tensor.datatype != "BOOL":
        dtype = dtype.newbyteorder("<")
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def _octets(element: Any, name: str) -> bytes:
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        return element.encode("utf-8", "surrogatepass")
    if isinstance(element, bytearray | memoryview):
        return bytes(element)
    raise HandlerError(f'output "{name}": a BYTES element is a {type(element).__name__}')


def handler_input(request: V2Request) -> Any:
    """What a handler sees of a V2 request: the one input's array (BYTES: a list of
    ``str``, or ``bytes`` where not UTF-8), or ``{name: array}`` for several inputs."""
    if len(request.inputs) == 1:
        return tensor_value(request.inputs[0])
    return {tensor.name: tensor_value(tensor) for tensor in request.inputs}


def tensor_value(tensor: Tensor) -> Any:
    """One input as a handler sees it: its array, or for BYTES nested lists of text.

    Arrays read from binary data are read-only views of the body (still so after pickling
    to a worker); a handler gets a writable copy, as it would over JSON."""
    if tensor.datatype != "BYTES":
        data = tensor.data
        return data if data.flags.writeable else data.copy()
    texts = np.empty(tensor.data.size, dtype=np.object_)
    texts[:] = [_text(element) for element in tensor.data.ravel().tolist()]
    return texts.reshape(tensor.data.shape).tolist()


def _text(element: bytes) -> str | bytes:
    try:
        return element.decode("utf-8")
    except UnicodeDecodeError:
        return element
