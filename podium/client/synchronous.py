"""``Client``: the inference and management APIs, blocking (httpx.Client)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np

from podium.client import calls
from podium.parts import parts

T = TypeVar("T")


class Client:
    """Calls a Podium server. ``token`` is the inference token, ``management_token`` the
    management API's; each goes as ``Authorization: Bearer``. An error answer raises the
    matching ``PodiumError``; no answer at all raises ``ServerUnreachable``, or
    ``RequestTimeout`` after ``timeout`` seconds (``management_timeout`` for management
    calls, which may load a model).

    >>> with Client("http://10.0.0.5:8080", token="...") as client:
    ...     client.predict("nsmc_sentiment", {"text": "재밌다"})
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
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=calls.bearer(token))
        self._management_token = management_token
        self._management_http: httpx.Client | None = None  # made on first use

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._management_http is not None:
            self._management_http.close()

    # The inference API.

    def predict(self, model: str, data: Any, *, version: str | None = None) -> Any:
        """Send one request: ``bytes`` go as they are, anything else as JSON; the answer
        comes back parsed when it is JSON, else as bytes."""
        return self._send(calls.predict(model, data, version))

    def stream(
        self, model: str, data: Any, *, version: str | None = None, events: bool = False
    ) -> Iterator[Any]:
        """Send one request and yield its answer's parts as they arrive: each a JSON value
        (read from newline-delimited JSON, or from server-sent events with ``events``); an
        answer that was not streamed is one part; a TorchServe handler's raw chunks are
        yielded as bytes."""
        call = calls.stream(model, data, version, events)
        with calls.failures(self.url, self.timeout):
            response = self._http.send(call.request(self._http), stream=True)
        try:
            if not response.is_success:
                with calls.failures(self.url, self.timeout):
                    response.read()
                raise calls.error(response)
            with calls.failures(self.url, self.timeout):
                yield from parts(response)
        finally:
            response.close()

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
        return self._send(calls.infer(model, inputs, version, outputs, binary))

    def ping(self) -> bool:
        """True when every model on the server is ready (False while one loads)."""
        return self._send(calls.ping())

    # The management API.

    def models(self) -> list[dict[str, Any]]:
        """Every registered model: ``[{"modelName": ..., "modelUrl": ...}]``."""
        found: list[dict[str, Any]] = []
        page: int | None = 0
        while page is not None:
            answer = self._send(calls.models(page), management=True)
            found += answer["models"]
            page = int(answer["nextPageToken"]) if "nextPageToken" in answer else None
        return found

    def describe(self, model: str, version: str | None = None) -> list[dict[str, Any]]:
        """Each version of ``model`` (or the one ``version``): workers, batching, status."""
        return self._send(calls.describe(model, version), management=True)

    def register(self, url: str, **options: Any) -> dict[str, Any]:
        """Load an archive of the server's model store (its file name, or an allowed URL).
        ``options`` are the management API's: ``model_name``, ``initial_workers``,
        ``batch_size``, ``max_batch_delay``, ``response_timeout``, ``synchronous``."""
        return self._send(calls.register(url, options), management=True)

    def scale(
        self,
        model: str,
        version: str | None = None,
        *,
        min_workers: int,
        max_workers: int | None = None,
    ) -> dict[str, Any]:
        """Change a version's worker bounds live (the default version without one)."""
        return self._send(calls.scale(model, version, min_workers, max_workers), management=True)

    def unregister(self, model: str, version: str) -> dict[str, Any]:
        """Drain and unload one version."""
        return self._send(calls.unregister(model, version), management=True)

    def set_default(self, model: str, version: str) -> dict[str, Any]:
        """Send requests without a version to ``version``."""
        return self._send(calls.set_default(model, version), management=True)

    def _send(self, call: calls.Call[T], *, management: bool = False) -> T:
        http, url, timeout = self._http, self.url, self.timeout
        if management:
            http, url, timeout = self._management(), self.management_url, self.management_timeout
        with calls.failures(url, timeout):
            response = http.send(call.request(http))
        return call.read(response)

    def _management(self) -> httpx.Client:
        if self._management_http is None:
            self._management_http = httpx.Client(
                base_url=self.management_url,
                timeout=self.management_timeout,
                headers=calls.bearer(self._management_token),
            )
        return self._management_http
