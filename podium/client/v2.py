"""The Open Inference Protocol (KServe V2 REST) for the clients: a request's body from
named inputs, and an answer's output tensors as numpy arrays. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import orjson

from podium.errors import PodiumError
from podium.protocols.v2 import DATATYPES
from podium.protocols.v2.answers import tensor
from podium.protocols.v2.tensors import from_raw, to_raw


def infer_body(
    inputs: Mapping[str, Any], outputs: Sequence[str] | None, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an infer request: JSON, or with ``binary`` the JSON header
    followed by each tensor's raw bytes (the binary extension)."""
    try:
        tensors = [tensor(name, value) for name, value in inputs.items()]
    except PodiumError as error:  # worded for answers: "output ..." is the input here
        raise ValueError(error.message.replace("output", "input", 1)) from None
    header: dict[str, Any] = {"inputs": [], "parameters": {"binary_data_output": binary}}
    raws: list[bytes] = []
    for item in tensors:
        entry: dict[str, Any] = {
            "name": item.name,
            "datatype": item.datatype,
            "shape": list(item.shape),
        }
        if binary:
            raws.append(to_raw(item))
            entry["parameters"] = {"binary_data_size": len(raws[-1])}
        else:
            entry["data"] = [
                e.decode() if isinstance(e, bytes) else e for e in item.data.ravel().tolist()
            ]
        header["inputs"].append(entry)
    if outputs is not None:
        header["outputs"] = [{"name": name} for name in outputs]
    body = orjson.dumps(header)
    if not binary:
        return body, {"content-type": "application/json"}
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(body)),
    }
    return b"".join([body, *raws]), headers


def output_tensors(response: httpx.Response) -> dict[str, np.ndarray[Any, Any]]:
    """A V2 answer's outputs by name, from its JSON and binary section."""
    content = response.content
    length = response.headers.get("inference-header-content-length")
    split = int(length) if length is not None else len(content)
    answer = orjson.loads(content[:split])
    offset = split
    found: dict[str, np.ndarray[Any, Any]] = {}
    for entry in answer["outputs"]:
        name, datatype, shape = entry["name"], entry["datatype"], tuple(entry["shape"])
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            array = from_raw(content[offset : offset + size], name, datatype, shape)
            offset += size
        elif datatype == "BYTES":
            array = np.empty(len(entry["data"]), dtype=np.object_)
            array[:] = entry["data"]
            array = array.reshape(shape)
        else:
            array = np.asarray(entry["data"], dtype=DATATYPES[datatype]).reshape(shape)
        if datatype == "BYTES":
            array = np.vectorize(_text, otypes=[np.object_])(array) if array.size else array
        found[name] = array
    return found


def _text(element: Any) -> Any:
    if isinstance(element, bytes):
        try:
            return element.decode("utf-8")
        except UnicodeDecodeError:
            return element
    return element
