"""V2 model metadata from a model's signature (the manifest's format, or what its handler
said at load): each tensor's name, V2 datatype and shape (-1 for any size)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.version import __version__

DATATYPE_OF = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
    "bytes": "BYTES",
    "object": "BYTES",
}
"""Signature dtypes (numpy names, ``string``) → V2 datatypes."""

PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "torch": "pytorch_torchscript",
    "sklearn": "sklearn",
    "transformers": "transformers",
    "torchserve": "torchserve",
}
"""Built-in handlers → the ``platform`` V2 metadata reports (custom handlers: ``python``)."""

EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions server metadata lists."""


def server_metadata() -> dict[str, Any]:
    return {"name": "podium", "version": __version__, "extensions": list(EXTENSIONS)}


def model_metadata(
    name: str, versions: list[str], handler: str, signature: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``GET /v2/models/{m}``'s answer (the gRPC ``ModelMetadataResponse`` has the same
    fields). Without a signature, inputs and outputs are empty lists."""
    signature = signature or {}
    return {
        "name": name,
        "versions": versions,
        "platform": PLATFORMS.get(handler, "python"),
        "inputs": tensors_of(signature.get("inputs")),
        "outputs": tensors_of(signature.get("outputs")),
    }


def tensors_of(entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, Mapping):
        return []
    described = []
    for name, entry in entries.items():
        entry = entry if isinstance(entry, Mapping) else {}
        dtype = str(entry.get("dtype", "float32"))
        shape = entry.get("shape")
        dims = [-1] if shape is None else [_dim(d) for d in shape]
        described.append(
            {"name": str(name), "datatype": DATATYPE_OF.get(dtype, "BYTES"), "shape": dims}
        )
    return described


def _dim(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1
