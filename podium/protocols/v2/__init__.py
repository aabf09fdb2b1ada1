"""The Open Inference Protocol (KServe V2): its typed requests, shared by the REST codec
(``rest``) and the gRPC codec (``grpc``); how tensors reach a handler and come back
(``tensors``).

A front end parses and validates a V2 request completely (datatype, shape against data,
sizes) into a ``V2Request`` before it is queued: nothing malformed reaches a worker. The
worker hands the handler numpy arrays (``tensors.handler_input``) and encodes its answer as
named output tensors for the codec that asked.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
"""Every V2 datatype and the numpy dtype its data takes (``BYTES``: objects, each ``bytes``).
Binary data is little-endian; BYTES elements are each a 4-byte little-endian length, then
the bytes."""


class Tensor(NamedTuple):
    """One named tensor: a request's input, or an answer's output."""

    name: str
    datatype: str
    """A key of ``DATATYPES``."""
    shape: tuple[int, ...]
    data: np.ndarray[Any, Any]
    """The values, already in ``shape`` and in the datatype's dtype (BYTES: ``bytes``)."""
    parameters: dict[str, Any] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Crossing to a worker: the data as raw bytes (or a tuple of bytes for BYTES), which
        # pickle copies at C speed. Pickling the array itself costs ~7 µs a tensor, more
        # than parsing the request.
        data = self.data
        raw: Any = tuple(data.ravel().tolist()) if data.dtype.kind == "O" else data.tobytes()
        return _rebuilt, (self.name, self.datatype, self.shape, raw, self.parameters)


def _rebuilt(name: str, datatype: str, shape: tuple[int, ...], raw: Any, parameters: Any) -> Tensor:
    """A ``Tensor`` from its pickled form (``Tensor.__reduce__``)."""
    if isinstance(raw, tuple):
        data = np.empty(len(raw), dtype=np.object_)
        data[:] = raw
    else:
        data = np.frombuffer(raw, DATATYPES[datatype])
    return Tensor(name, datatype, shape, data.reshape(shape), parameters)


class RequestedOutput(NamedTuple):
    """An output the client asked for by name."""

    name: str
    binary: bool | None = None
    """``binary_data`` of its parameters (REST): None leaves it to the request's default."""
    parameters: dict[str, Any] | None = None


class V2Request(NamedTuple):
    """A validated inference request of the Open Inference Protocol."""

    id: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] | None = None
    """The outputs asked for, in order; None answers every output."""
    parameters: dict[str, Any] | None = None
    binary_output: bool = False
    """REST: ``binary_data_output`` — outputs not named otherwise go in the binary section."""


__all__ = ["DATATYPES", "RequestedOutput", "Tensor", "V2Request"]
