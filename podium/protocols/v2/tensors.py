"""V2 tensors between the wire and a handler (to be written: see the docstrings).

Shared by the REST codec (JSON and the binary tensor data extension) and the gRPC codec
(typed contents and raw contents)."""

from __future__ import annotations

from typing import Any

import numpy as np

from podium.protocols.v2 import Tensor, V2Request


def from_raw(
    raw: bytes | memoryview, name: str, datatype: str, shape: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    """Raw little-endian bytes (BYTES: 4-byte length-prefixed elements) → an array of
    ``shape``; ``InvalidRequest`` when their size does not match the shape."""
    raise NotImplementedError


def to_raw(tensor: Tensor) -> bytes:
    """A tensor's data as raw little-endian bytes (BYTES: length-prefixed)."""
    raise NotImplementedError


def handler_input(request: V2Request) -> Any:
    """What a handler sees of a V2 request: the one input's array (BYTES: a list of
    ``str``, or ``bytes`` where not UTF-8), or ``{name: array}`` for several inputs."""
    raise NotImplementedError


def answer_tensors(value: Any, request: V2Request) -> list[Tensor]:
    """A handler's answer to one request as named output tensors, the requested outputs
    only when it named some."""
    raise NotImplementedError
