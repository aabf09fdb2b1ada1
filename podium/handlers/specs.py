"""Model inputs as the tensor handlers see them: a ``TensorSpec`` per input (from the
model, or the manifest's ``signature``), and the checked conversion of request values to
its dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.errors import InvalidInput

NUMBER_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)
DTYPES = (*NUMBER_DTYPES, "string")
Dims = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorSpec:
    """One model input: its name, dtype (a NumPy dtype name or ``string``) and shape.

    ``shape`` includes the batch axis; ``None`` in it is a dynamic dimension, and a
    ``shape`` of ``None`` means the rank is unknown (the request is then a batch).
    """

    name: str
    dtype: str = "float32"
    shape: Dims | None = None

    @property
    def rank(self) -> int | None:
        """Dimensions of one instance (the shape without its batch axis)."""
        return None if self.shape is None else len(self.shape) - 1


def format_shape(dims: Sequence[int | None]) -> str:
    """``(None, 64)`` → ``"(*, 64)"``; a one-dimensional shape keeps no trailing comma."""
    return "(" + ", ".join("*" if d is None else str(d) for d in dims) + ")"


def read_signature(signature: Mapping[str, Any] | None, key: str) -> list[TensorSpec] | None:
    """The specs under ``signature[key]`` (``inputs`` or ``outputs``), if the manifest has any.

    Format: ``{"inputs": {"x": {"dtype": "float32", "shape": [null, 64]}}}``.
    """
    if not signature or key not in signature:
        return None
    entries = signature[key]
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError(f'signature "{key}" must map tensor names to {{"dtype", "shape"}}')
    specs: list[TensorSpec] = []
    for name, entry in entries.items():
        entry = entry or {}
        dtype = str(entry.get("dtype", "float32"))
        if dtype not in DTYPES:
            raise ValueError(f'signature: {key} "{name}" has unsupported dtype {dtype!r}')
        shape = entry.get("shape")
        dims = None if shape is None else tuple(_dim(d) for d in shape)
        if dims is not None and not dims:
            raise ValueError(f'signature: {key} "{name}" needs a batch axis in its shape')
        specs.append(TensorSpec(str(name), dtype, dims))
    return specs


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def convert_dtype(array: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """Cast to the model's input dtype, refusing strings for numbers and the reverse."""
    kind = array.dtype.kind
    if dtype == "string":
        if kind not in "US":
            raise InvalidInput(f"{where}: expected a string array, got {_kind_name(kind)}")
        return array.astype(object)
    if kind in "US":
        raise InvalidInput(f"{where}: expected a number array, got string")
    if kind not in "biuf":
        raise InvalidInput(f"{where}: expected a number array, got {_kind_name(kind)}")
    target = np.dtype(dtype)
    if (
        target.kind in "iu"
        and kind == "f"
        and not (np.all(np.isfinite(array)) and np.all(array == np.round(array)))
    ):
        raise InvalidInput(f"{where}: expected integers ({dtype}), got fractional numbers")
    if target.kind in "iu" and kind in "iuf" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInput(f"{where}: values out of range for {dtype}")
    with np.errstate(all="ignore"):
        converted = array.astype(target)
    if not converted.flags.writeable:
        converted = converted.copy()
    return converted


def _kind_name(kind: str) -> str:
    return {"U": "string", "S": "string", "O": "mixed or nested values", "b": "booleans"}.get(
        kind, "number"
    )
