"""V2 tensors between the wire and a handler, shared by the REST codec (JSON and the binary
tensor data extension) and the gRPC codec (typed contents and raw contents).

Wire → array: ``check_shape`` refuses a shape before anything is allocated from it, and
``from_raw`` reads raw little-endian bytes (the binary extension, gRPC's raw contents).
Array → wire: ``to_raw``.

What a handler sees (``handler_input``): the one input's value, or ``{name: value}`` when
the request has several. Numbers are a numpy array of the datatype, in the declared shape;
BYTES is a nested list of ``str`` shaped like the tensor (``bytes`` where an element is not
UTF-8), since handlers that take text expect what they get over JSON: ``["a review"]``.

What a handler answers becomes named output tensors (``answer_tensors``):

    [Tensor, ...]                     passed through as they are
    [{"label": "pos", "confidence": 0.9, "probabilities": {...}}, ...]
                                      one tensor per key, the N rows stacked along a new
                                      first axis: label BYTES [N], confidence FP64 [N],
                                      probabilities FP64 [N, C]; all rows need the same keys
    {"outputs": {name: value}}        the wrapper is dropped (also in each row of a list)
    {name: value, ...}                one tensor per key
    array, list of numbers, scalar,   one tensor named ``output0``
    str or bytes

A value that is itself a dict of numbers (``{"negative": 0.1, "positive": 0.9}``) becomes
its values in order. A scalar becomes a tensor of shape [1]. Datatypes follow numpy: bool
BOOL, intN INTN, uintN UINTN, floatN FPN, str and bytes BYTES; Python ``int`` is INT64 and
``float`` FP64. Ragged lists, ``None``, complex numbers or other objects are the handler's
fault (``HandlerError``). When the request named its outputs, only those are answered, in
its order; a name the answer lacks is the client's fault (``InvalidInput``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from podium.errors import HandlerError, InvalidInput, InvalidRequest
from podium.protocols.v2 import DATATYPES, Tensor, V2Request

MAX_ELEMENTS = 2**31
"""Most elements one tensor may declare. The data must be present anyway (its size is
checked against the shape before anything is allocated); this bounds the arithmetic."""

MAX_RANK = 32
"""Most dimensions a tensor may have (numpy's own limit is 64)."""

OUTPUT = "output0"
"""The name of the one output a bare array or list answer becomes."""

_LENGTH = struct.Struct("<I")
_DATATYPE_OF_KIND = {"b": "BOOL", "i": "INT", "u": "UINT", "f": "FP"}


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


def answer_tensors(value: Any, request: V2Request) -> list[Tensor]:
    """A handler's answer to one request as named output tensors, the requested outputs
    only when it named some (see the module docstring for the rules)."""
    tensors = _tensors(value)
    if request.outputs is None:
        return tensors
    by_name = {tensor.name: tensor for tensor in tensors}
    chosen: list[Tensor] = []
    for requested in request.outputs:
        found = by_name.get(requested.name)
        if found is None:
            available = ", ".join(f'"{name}"' for name in by_name) or "none"
            raise InvalidInput(
                f'requested output "{requested.name}" is not in the answer '
                f"(its outputs: {available})"
            )
        chosen.append(found)
    return chosen


def _tensors(value: Any) -> list[Tensor]:
    # Answers are dicts: ``isinstance(x, dict)`` is several times cheaper than an ABC check.
    if isinstance(value, Tensor):
        return [_checked_tensor(value)]
    if isinstance(value, list | tuple) and value:
        if all(isinstance(item, Tensor) for item in value):
            return [_checked_tensor(item) for item in value]
        if all(isinstance(item, dict) for item in value):
            return _stacked([_unwrap(item) for item in value])
    if isinstance(value, dict):
        return [tensor(str(name), item) for name, item in _unwrap(value).items()]
    return [tensor(OUTPUT, value)]


def _unwrap(answer: Mapping[Any, Any]) -> Mapping[Any, Any]:
    inner = answer.get("outputs") if len(answer) == 1 else None
    return inner if isinstance(inner, dict) else answer


def _stacked(rows: list[Mapping[Any, Any]]) -> list[Tensor]:
    keys = list(rows[0])
    for index, row in enumerate(rows):
        if list(row) != keys:
            raise HandlerError(
                f"answer rows differ in their keys: row 0 has {keys}, row {index} {list(row)}"
            )
    return [tensor(str(key), [_row_value(row[key], str(key)) for row in rows]) for key in keys]


def _row_value(item: Any, name: str) -> Any:
    return _mapping_values(item, name) if isinstance(item, dict) else item


def _mapping_values(item: Mapping[Any, Any], name: str) -> list[Any]:
    # A dict of scores by label: its values, in order (the order the handler wrote them).
    for inner in item.values():
        if isinstance(inner, dict):
            raise HandlerError(f'output "{name}": a dict inside a dict cannot be a tensor')
    return list(item.values())


def tensor(name: str, value: Any) -> Tensor:
    """One named output tensor from an answer's value: an array, a (nested) list, a dict of
    numbers, a scalar, text (``HandlerError`` when it is none of those)."""
    if isinstance(value, dict):
        value = _mapping_values(value, name)
    if isinstance(value, str | bytes):
        return _bytes_tensor(name, [value], np.empty(1, dtype=np.object_))
    if value is None:
        raise HandlerError(f'output "{name}" is None')
    try:
        array = np.asarray(value)
    except UnicodeDecodeError:  # text mixed with bytes that are not UTF-8: no numpy string
        array = np.asarray(value, dtype=np.object_)
    except (ValueError, TypeError, OverflowError):
        raise HandlerError(
            f'output "{name}" is not a rectangular array (lists of different lengths?)'
        ) from None
    if array.ndim == 0:
        array = array.reshape(1)
    kind = array.dtype.kind
    if kind in "USO":
        return _bytes_tensor(name, value, array)
    prefix = _DATATYPE_OF_KIND.get(kind)
    datatype = f"{prefix}{8 * array.dtype.itemsize}" if kind in "iuf" else prefix
    if datatype is None or datatype not in DATATYPES:
        raise HandlerError(f'output "{name}" has dtype {array.dtype}, which V2 cannot carry')
    return Tensor(name, datatype, array.shape, array)


def _bytes_tensor(name: str, value: Any, array: np.ndarray[Any, Any]) -> Tensor:
    # numpy makes strings of numbers mixed with text ([1, "a"]) and drops trailing NULs of
    # bytes: the elements are taken from the handler's own lists, and each must be text.
    if isinstance(value, np.ndarray):
        leaves = array.astype(np.object_).ravel().tolist()
    else:
        leaves = list(_leaves(value))
    for leaf in leaves:
        if not isinstance(leaf, str | bytes):
            raise HandlerError(
                f'output "{name}": {type(leaf).__name__} {leaf!r:.40} cannot be an element '
                "of a V2 tensor (mixed with text, past 64 bits, or not a number at all)"
            )
    if len(leaves) != array.size:
        raise HandlerError(
            f'output "{name}" is not a rectangular array (lists of different lengths?)'
        )
    elements = np.empty(len(leaves), dtype=np.object_)
    elements[:] = leaves
    return Tensor(name, "BYTES", array.shape, elements.reshape(array.shape))


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, np.ndarray):
        yield from value.ravel().tolist()
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _checked_tensor(found: Tensor) -> Tensor:
    if found.datatype not in DATATYPES or not isinstance(found.data, np.ndarray):
        raise HandlerError(f'output "{found.name}": a Tensor needs a V2 datatype and an array')
    if tuple(found.shape) != found.data.shape:
        raise HandlerError(
            f'output "{found.name}": shape {list(found.shape)} but its data has '
            f"{list(found.data.shape)}"
        )
    return found
