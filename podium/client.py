"""A small HTTP client for a Podium server (httpx).

>>> from podium import Client
>>> Client("http://127.0.0.1:8080").predict("nsmc_sentiment", {"text": "재밌다"})
{'label': 'positive', 'confidence': 0.93}
>>> Client().infer("nsmc_sentiment", {"text": ["재밌다"]})      # KServe V2, numpy out
{'label': array(['positive'], dtype=object), 'confidence': array([0.93])}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import orjson

from podium.errors import PodiumError, from_code, from_status
from podium.parts import EVENT_STREAM, NDJSON, parts
from podium.protocols.v2 import DATATYPES
from podium.protocols.v2.answers import tensor
from podium.protocols.v2.tensors import from_raw, to_raw


class Client:
    """Calls the inference API; errors come back as the matching ``PodiumError``."""

    def __init__(self, url: str = "http://127.0.0.1:8080", *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(self, model: str, data: Any, *, version: str | None = None) -> Any:
        """Send one request: ``bytes`` go as they are, anything else as JSON."""
        return _answer(self._http.send(self._request(model, data, version)))

    def stream(
        self, model: str, data: Any, *, version: str | None = None, events: bool = False
    ) -> Iterator[Any]:
        """Send one request and yield its answer's parts as they arrive: each a JSON value
        (read from newline-delimited JSON, or from server-sent events with ``events``); an
        answer that was not streamed is one part; a TorchServe handler's raw chunks are
        yielded as bytes."""
        request = self._request(model, data, version)
        request.headers["accept"] = EVENT_STREAM if events else f"{NDJSON}, application/json"
        response = self._http.send(request, stream=True)
        try:
            if not response.is_success:
                response.read()
                raise _error(response)
            yield from parts(response)
        finally:
            response.close()

    def _request(self, model: str, data: Any, version: str | None) -> httpx.Request:
        path = f"/predictions/{model}" + (f"/{version}" if version else "")
        if isinstance(data, bytes):
            headers = {"content-type": "application/octet-stream"}
            return self._http.build_request("POST", path, content=data, headers=headers)
        return self._http.build_request("POST", path, json=data)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        binary: bool = True,
    ) -> dict[str, np.ndarray[Any, Any]]:
        """One request over the Open Inference Protocol (KServe V2 REST): ``inputs`` by
        name (numpy arrays, nested lists, text), the answer's output tensors by name as
        numpy arrays (BYTES: objects, ``str`` where UTF-8). ``outputs`` asks for those
        only; ``binary`` sends and receives tensors in the binary extension, else JSON."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
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
        headers = {"content-type": "application/json"}
        if binary:
            headers = {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(body)),
            }
            body = b"".join([body, *raws])
        response = self._http.post(path, content=body, headers=headers)
        if not response.is_success:
            raise _error(response)
        return _output_tensors(response)

    def ping(self) -> bool:
        """True when every model on the server is ready."""
        return self._http.get("/ping").status_code == 200


def _answer(response: httpx.Response) -> Any:
    if response.is_success:
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content
    raise _error(response)


def _error(response: httpx.Response) -> PodiumError:
    try:
        body = response.json()
        if "error" in body:  # the V2 shape: a message, the class told by the status
            return from_status(response.status_code, str(body["error"]))
        error = from_code(str(body["type"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        error = PodiumError(f"HTTP {response.status_code}: {response.text[:200]}")
    return error


def _output_tensors(response: httpx.Response) -> dict[str, np.ndarray[Any, Any]]:
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
