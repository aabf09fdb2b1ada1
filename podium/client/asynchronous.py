"""``AsyncClient``: ``Client``'s methods, awaited (httpx.AsyncClient)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np

from podium.client import calls
from podium.parts import aparts

T = TypeVar("T")


class AsyncClient:
    """``Client`` for asyncio: the same arguments, methods and errors, each method awaited
    (``stream`` is an async iterator).

    >>> async with AsyncClient("http://10.0.0.5:8080", token="...") as client:
    ...     await client.predict("nsmc_sentiment", {"text": "재밌다"})
    {'label': 'positive', 'confidence': 0.93}
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        token: str | None = None,
        timeout: float = 60.0,
        management_url: str = "http://127.0.0.1:8081",
        management_token: str | None = None,
        management_timeout: float = 300.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.timeout = timeout
        self.management_timeout = management_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, headers=calls.bearer(token)
        )
        self._management_token = management_token
        self._management_http: httpx.AsyncClient | None = None  # made on first use

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._management_http is not None:
            await self._management_http.aclose()

    # The inference API.

    async def predict(self, model: str, data: Any, *, version: str | None = None) -> Any:
        """Send one request: ``bytes`` go as they are, anything else as JSON; the answer
        comes back parsed when it is JSON, else as bytes."""
        return await self._send(calls.predict(model, data, version))

    async def stream(
        self, model: str, data: Any, *, version: str | None = None, events: bool = False
    ) -> AsyncIterator[Any]:
        """``Client.stream``: the answer's parts as they arrive (NDJSON, or server-sent
        events with ``events``)."""
        call = calls.stream(model, data, version, events)
        with calls.failures(self.url, self.timeout):
            response = await self._http.send(call.request(self._http), stream=True)
        try:
            if not response.is_success:
                with calls.failures(self.url, self.timeout):
                    await response.aread()
                raise calls.error(response)
            with calls.failures(self.url, self.timeout):
                async for part in aparts(response):
                    yield part
        finally:
            await response.aclose()

    async def infer(
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
        return await self._send(calls.infer(model, inputs, version, outputs, binary))

    async def ping(self) -> bool:
        """True when every model on the server is ready (False while one loads)."""
        return await self._send(calls.ping())

    # The management API.

    async def models(self) -> list[dict[str, Any]]:
        """Every registered model: ``[{"modelName": ..., "modelUrl": ...}]``."""
        found: list[dict[str, Any]] = []
        page: int | None = 0
        while page is not None:
            answer = await self._send(calls.models(page), management=True)
            found += answer["models"]
            page = int(answer["nextPageToken"]) if "nextPageToken" in answer else None
        return found

    async def describe(self, model: str, version: str | None = None) -> list[dict[str, Any]]:
        """Each version of ``model`` (or the one ``version``): workers, batching, status."""
        return await self._send(calls.describe(model, version), management=True)

    async def register(self, url: str, **options: Any) -> dict[str, Any]:
        """Load an archive of the server's model store (its file name, or an allowed URL).
        ``options`` are the management API's: ``model_name``, ``initial_workers``,
        ``batch_size``, ``max_batch_delay``, ``response_timeout``, ``synchronous``."""
        return await self._send(calls.register(url, options), management=True)

    async def scale(
        self,
        model: str,
        version: str | None = None,
        *,
        min_workers: int,
        max_workers: int | None = None,
    ) -> dict[str, Any]:
        """Change a version's worker bounds live (the default version without one)."""
        return await self._send(
            calls.scale(model, version, min_workers, max_workers), management=True
        )

    async def unregister(self, model: str, version: str) -> dict[str, Any]:
        """Drain and unload one version."""
        return await self._send(calls.unregister(model, version), management=True)

    async def set_default(self, model: str, version: str) -> dict[str, Any]:
        """Send requests without a version to ``version``."""
        return await self._send(calls.set_default(model, version), management=True)

    async def _send(self, call: calls.Call[T], *, management: bool = False) -> T:
        http, url, timeout = self._http, self.url, self.timeout
        if management:
            http, url, timeout = self._management(), self.management_url, self.management_timeout
        with calls.failures(url, timeout):
            response = await http.send(call.request(http))
        return call.read(response)

    def _management(self) -> httpx.AsyncClient:
        if self._management_http is None:
            self._management_http = httpx.AsyncClient(
                base_url=self.management_url,
                timeout=self.management_timeout,
                headers=calls.bearer(self._management_token),
            )
        return self._management_http
