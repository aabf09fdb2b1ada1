"""Refusing at the edge: a request for a model whose queue is full is answered 503 from the
HTTP protocol itself, as soon as its head is parsed.

Under overload most requests are refused, and what a refusal costs decides how much of
the machine is left for the requests admitted. Through the ASGI app a refusal costs a
task, a scope, a request/response cycle and two ``send`` calls; here it costs a lookup and
one prepared write (see ``bench/RESULTS.md``, overload). Only the plain case is taken
here: an inference route, a known model version whose queue is full, and a request that
passes the Host and token checks. Anything else, including every error worth a message of
its own, goes the usual way through the app.

Heads are parsed one after another as data arrives, before any of their requests reaches
the batcher: each one let through reserves a place (``ModelVersion.reserve``: in the queue, or
in a batch for an idle worker) until the loop's next turn, so that a burst read in one
turn is cut at what the model can take here rather than through the app.

A refused connection is not read again until ``Retry-After`` has passed or its model has
idle capacity (``hold_refused``, on by default): a client that retries at once, ignoring
``Retry-After``, waits instead of making the server refuse it again and again, so the
refusals left cost little and the admitted requests keep the machine. A client that
honours ``Retry-After`` never notices; one that sends another model's request on the same
connection right after a refusal waits too (``--no-hold-refused`` turns this off, at the
cost of most of the throughput under overload: bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from podium.core.dataplane import DataPlane
from podium.core.registry import ModelVersion
from podium.errors import QueueFull
from podium.frontends.rest.hosts import host_name
from podium.frontends.rest.inference import route_of
from podium.frontends.rest.management import bearer_matches

Headers = list[tuple[bytes, bytes]]
Hold = Callable[[Callable[[], None]], None]
"""Takes a refused connection's ``resume``: called when its model has room again."""
Refusal = Callable[[bytes, bytes, Headers, int], tuple[bytes, Hold | None] | None]
"""(method, URL, headers, local port) → the whole answer to write and where to hold the
connection, or None to go on."""

INFERENCE_METHODS = (b"POST", b"PUT")
MISSING: Any = object()


def _answer(error: QueueFull) -> bytes:
    body = orjson.dumps(error.body())
    head = [
        b"HTTP/1.1 503 Service Unavailable",
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        *(b"%s: %s" % (k.lower().encode(), v.encode()) for k, v in error.headers().items()),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


QUEUE_FULL = _answer(QueueFull())


class EdgeAdmission:
    """Decides, from a request head alone, whether to refuse it at once (queue full)."""

    def __init__(
        self,
        dataplane: DataPlane,
        inference_port: int,
        allowed_hosts: frozenset[str] | None,
        token: str | None,
        hold: bool = True,
    ) -> None:
        self.dataplane = dataplane
        self.port = inference_port
        self.allowed_hosts = allowed_hosts
        self.token = token.encode() if token is not None else None
        self.hold = hold
        self._routes: dict[bytes, ModelVersion | None] = {}
        self._generation = -1

    def __call__(
        self, method: bytes, url: bytes, headers: Headers, port: int
    ) -> tuple[bytes, Hold | None] | None:
        if port != self.port or method not in INFERENCE_METHODS:
            return None
        if self.dataplane.registry.generation != self._generation:
            self._routes.clear()
            self._generation = self.dataplane.registry.generation
        served = self._routes.get(url, MISSING)
        if served is MISSING:
            served = self._served(url)
        if served is None or self.dataplane.draining:
            return None
        if served.reserve():
            return None
        if not self._passes(headers):
            return None
        self.dataplane.observe(served, QueueFull.status)
        return QUEUE_FULL, served.hold if self.hold else None

    def _served(self, url: bytes) -> ModelVersion | None:
        """The version a request target goes to (None: the usual path answers it),
        remembered per target until the registry changes."""
        registry = self.dataplane.registry
        if len(self._routes) > 1024:
            self._routes.clear()
        served = None
        if b"%" not in url:
            path, _, query = url.decode("latin-1").partition("?")
            try:
                model, version, _ = route_of(path, query, registry.default_model)
                served = registry.resolve(model, version)
            except Exception:  # unknown model or route: the usual path answers it
                served = None
        self._routes[url] = served
        return served

    def _passes(self, headers: Headers) -> bool:
        """The Host and token checks the app would apply (a failure is answered there)."""
        # A request without Host passes the Host check (as in HostGuard).
        host_ok, token_ok = True, self.token is None
        for name, value in headers:
            if name == b"host" and self.allowed_hosts is not None:
                host_ok = host_name(value) in self.allowed_hosts
            elif name == b"authorization" and self.token is not None:
                token_ok = bearer_matches(value, self.token)
        return host_ok and token_ok
