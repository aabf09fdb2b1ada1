"""A handler's answer as V2 output tensors (``answer_tensors``), for the REST and gRPC
codecs in the worker, and ``tensor`` for one value (the client builds its inputs with it).

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

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from podium.errors import HandlerError, InvalidInput
from podium.protocols.v2 import DATATYPES, Tensor, V2Request

OUTPUT = "output0"
"""The name of the one output a bare array or list answer becomes."""

_DATATYPE_OF_KIND = {"b": "BOOL", "i": "INT", "u": "UINT", "f": "FP"}


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
