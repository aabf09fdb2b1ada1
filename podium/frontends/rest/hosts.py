"""Which ``Host`` a request may name: the defence against DNS rebinding.

A web page on any site can make the browser send requests to ``127.0.0.1`` by pointing its
own host name at that address. The browser then sends the page's host name in ``Host``.
A server bound to loopback answers only requests naming a loopback name (``localhost``,
``127.0.0.1``, ``::1``), its bound address, or a name in ``allowed_hosts``; others get 421.

A server bound beyond loopback checks ``Host`` only when ``allowed_hosts`` is set (its
token guards it). ``allowed_hosts = ["*"]`` turns the check off.
"""

from __future__ import annotations

import ipaddress

from podium.errors import MisdirectedRequest
from podium.frontends.rest.inference import send_error
from podium.frontends.rest.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(bound: str, extra: list[str]) -> frozenset[str] | None:
    """The host names a server bound to ``bound`` answers to; None for any."""
    if "*" in extra or (not extra and not is_loopback(bound)):
        return None
    names = {bound, *extra}
    if is_loopback(bound):
        names |= LOOPBACK_NAMES
    return frozenset(name.lower().strip("[]").rstrip(".") for name in names)


def host_name(value: bytes) -> str:
    """The name in a ``Host`` header, without its port or an IPv6 literal's brackets."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


class HostGuard:
    """Answers 421 to a request whose ``Host`` is not in ``allowed``, before any routing.

    A request without ``Host`` (HTTP/1.0 tools) passes: browsers always send one.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed
        # Clients send the same few Host values again and again: remember the verdicts
        # (bounded: a client sending endless names only resets the memory).
        self._seen: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"host":
                    allowed = self._seen.get(value)
                    if allowed is None:
                        allowed = self._learn(value)
                    if not allowed:
                        host = host_name(value)
                        await send_error(
                            send, MisdirectedRequest(f"This server does not answer to {host!r}")
                        )
                        return
                    break
        await self.app(scope, receive, send)

    def _learn(self, value: bytes) -> bool:
        if len(self._seen) >= 256:
            self._seen.clear()
        allowed = self._seen[value] = host_name(value) in self.allowed
        return allowed


def guard_hosts(app: ASGIApp, bound: str, extra: list[str]) -> ASGIApp:
    """``app`` behind a ``HostGuard`` for a server bound to ``bound`` (or as it is)."""
    allowed = allowed_hosts(bound, extra)
    return app if allowed is None else HostGuard(app, allowed)
