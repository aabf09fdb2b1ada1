"""A small HTTP client for a Podium server (httpx).

>>> from podium import Client
>>> Client("http://127.0.0.1:8080").predict("nsmc_sentiment", {"text": "재밌다"})
{'label': 'positive', 'confidence': 0.93}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from podium.errors import PodiumError, from_code


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

    def stream(self, model: str, data: Any, *, version: str | None = None) -> Iterator[bytes]:
        """Send one request and yield its answer's bytes as they arrive: a streaming
        handler's parts one by one, as the server sends them."""
        response = self._http.send(self._request(model, data, version), stream=True)
        try:
            if not response.is_success:
                response.read()
                raise _error(response)
            yield from response.iter_bytes()
        finally:
            response.close()

    def _request(self, model: str, data: Any, version: str | None) -> httpx.Request:
        path = f"/predictions/{model}" + (f"/{version}" if version else "")
        if isinstance(data, bytes):
            headers = {"content-type": "application/octet-stream"}
            return self._http.build_request("POST", path, content=data, headers=headers)
        return self._http.build_request("POST", path, json=data)

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
        error = from_code(str(body["type"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        error = PodiumError(f"HTTP {response.status_code}: {response.text[:200]}")
    return error
