"""What each client method sends and how its answer is read, shared by ``Client`` and
``AsyncClient``: they only send a ``Call`` and hand the answer to its ``read``. No I/O here.

An error answer becomes the matching ``PodiumError`` (rebuilt from its JSON ``type``, or
from its status for a V2 ``{"error": ...}`` answer); a failure to get an answer at all
becomes ``ServerUnreachable`` or ``RequestTimeout`` (``failure``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from podium.client.v2 import infer_body, output_tensors
from podium.errors import PodiumError, RequestTimeout, ServerUnreachable, from_code, from_status
from podium.parts import EVENT_STREAM, NDJSON

T = TypeVar("T")
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
PAGE_LIMIT = 1000  # the management API's largest page


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request, and how its answer is read (``read`` raises for an error answer)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method, self.path, params=self.params, content=self.content, headers=self.headers
        )


def bearer(token: str | None) -> dict[str, str]:
    """The headers that carry ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


# The inference API.


def predict(model: str, data: Any, version: str | None) -> Call[Any]:
    """``bytes`` go as they are, anything else as JSON; the answer is JSON or bytes."""
    path = f"/predictions/{quote(model, safe='')}" + (
        f"/{quote(version, safe='')}" if version else ""
    )
    if isinstance(data, bytes):
        return Call("POST", path, answer, None, data, {"content-type": "application/octet-stream"})
    body = orjson.dumps(data, option=JSON_OPTIONS)
    return Call("POST", path, answer, None, body, {"content-type": "application/json"})


def stream(model: str, data: Any, version: str | None, events: bool) -> Call[Any]:
    """``predict``, asking for the answer's parts as NDJSON (or server-sent events)."""
    call = predict(model, data, version)
    accept = EVENT_STREAM if events else f"{NDJSON}, application/json"
    return Call(
        call.method,
        call.path,
        call.read,
        None,
        call.content,
        {**(call.headers or {}), "accept": accept},
    )


def infer(
    model: str,
    inputs: Mapping[str, Any],
    version: str | None,
    outputs: Sequence[str] | None,
    binary: bool,
) -> Call[dict[str, np.ndarray[Any, Any]]]:
    path = f"/v2/models/{quote(model, safe='')}"
    path += (f"/versions/{quote(version, safe='')}" if version else "") + "/infer"
    body, headers = infer_body(inputs, outputs, binary)
    return Call("POST", path, checked(output_tensors), None, body, headers)


def ping() -> Call[bool]:
    return Call("GET", "/ping", lambda response: response.status_code == 200)


# The management API.


def models(page: int) -> Call[dict[str, Any]]:
    """One page of the registered models (``nextPageToken`` names the next one)."""
    return Call(
        "GET", "/models", checked(json_answer), {"limit": PAGE_LIMIT, "next_page_token": page}
    )


def describe(model: str, version: str | None) -> Call[list[dict[str, Any]]]:
    return Call("GET", _model_path(model, version), checked(json_answer))


def register(url: str, options: Mapping[str, Any]) -> Call[dict[str, Any]]:
    params = {"url": url, **{key: value for key, value in options.items() if value is not None}}
    return Call("POST", "/models", checked(json_answer), params)


def scale(
    model: str, version: str | None, min_workers: int, max_workers: int | None
) -> Call[dict[str, Any]]:
    params: dict[str, Any] = {"min_worker": min_workers}
    if max_workers is not None:
        params["max_worker"] = max_workers
    return Call("PUT", _model_path(model, version), checked(json_answer), params)


def unregister(model: str, version: str) -> Call[dict[str, Any]]:
    return Call("DELETE", _model_path(model, version), checked(json_answer))


def set_default(model: str, version: str) -> Call[dict[str, Any]]:
    return Call("PUT", _model_path(model, version) + "/set-default", checked(json_answer))


def _model_path(model: str, version: str | None) -> str:
    return f"/models/{quote(model, safe='')}" + (f"/{quote(version, safe='')}" if version else "")


# Answers.


def answer(response: httpx.Response) -> Any:
    """A prediction: JSON when the server says so, else the bytes."""
    if not response.is_success:
        raise error(response)
    if response.headers.get("content-type", "").startswith("application/json"):
        return orjson.loads(response.content)
    return response.content


def json_answer(response: httpx.Response) -> Any:
    return orjson.loads(response.content)


def checked(read: Callable[[httpx.Response], T]) -> Callable[[httpx.Response], T]:
    """``read``, for a successful answer; an error answer raises its ``PodiumError``."""

    def read_checked(response: httpx.Response) -> T:
        if not response.is_success:
            raise error(response)
        return read(response)

    return read_checked


def error(response: httpx.Response) -> PodiumError:
    """The ``PodiumError`` an error answer stands for."""
    try:
        body = response.json()
        if "error" in body:  # the V2 shape: a message, the class told by the status
            return from_status(response.status_code, str(body["error"]))
        return from_code(str(body["type"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        return PodiumError(f"HTTP {response.status_code}: {response.text[:200]}")


# Failures to get an answer.


@contextmanager
def failures(url: str, timeout: float) -> Iterator[None]:
    """Raise httpx's transport errors as ``ServerUnreachable`` or ``RequestTimeout``."""
    try:
        yield
    except httpx.TransportError as raised:
        raise failure(url, timeout, raised) from None


def failure(url: str, timeout: float, raised: httpx.TransportError) -> PodiumError:
    """``cannot reach URL: connection refused``; a server that was reached but did not
    answer in time is a ``RequestTimeout`` (one that cannot even be connected to in time
    is unreachable)."""
    if isinstance(raised, httpx.TimeoutException) and not isinstance(raised, httpx.ConnectTimeout):
        return RequestTimeout(f"no answer from {url} within {timeout:g} s")
    return ServerUnreachable(f"cannot reach {url}: {reason(raised)}")


def reason(raised: BaseException) -> str:
    """The system's words for why, from the OSError under httpx's and httpcore's errors."""
    if isinstance(raised, httpx.ConnectTimeout):
        return "connection timed out"
    seen: BaseException | None = raised
    while seen is not None:
        if isinstance(seen, OSError):
            if seen.errno is not None and seen.errno in errno.errorcode:
                # The system's words for the code: asyncio says "Connect call failed (...)".
                return _lower(os.strerror(seen.errno))
            if seen.strerror:  # a name that does not resolve (a negative code)
                return _lower(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    return _lower(str(raised)) or type(raised).__name__


def _lower(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]
