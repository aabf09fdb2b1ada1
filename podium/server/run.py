"""Run the inference server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import secrets
import signal
import socket
from types import FrameType

import uvicorn

from podium.server.app import PodiumApp
from podium.settings import Settings

GC_THRESHOLD = 10_000
log = logging.getLogger("podium.server")


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish (up to ``drain_timeout``)."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sockets = [listen(settings.host, settings.port)]
    token = None
    if settings.management_port:
        if settings.management_port == settings.port:
            raise SystemExit("the management port must differ from the inference port")
        token = management_token(settings)
        sockets.append(listen(settings.management_host, settings.management_port))
        warn_if_exposed(settings.management_host, "management API")
    warn_if_exposed(settings.host, "inference API")
    app = PodiumApp(settings, token=token)
    # Everything imported so far lives as long as the server: move it out of the
    # collector's sight, and collect less often (the hot path allocates little that
    # forms cycles; see bench/RESULTS.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.drain_timeout),
        log_level="debug" if settings.debug else "info",
        server_header=False,
    )
    DrainingServer(config).run(sockets=sockets)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, as uvicorn would bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def management_token(settings: Settings) -> str:
    """The configured token, or a new one written to ``token_file`` (mode 0600)."""
    if settings.management_token:
        return settings.management_token
    token = secrets.token_urlsafe(32)
    path = settings.token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    log.info("management token written to %s", path)
    return token


def warn_if_exposed(host: str, what: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning(
            "the %s listens on %s, not loopback: anyone who can reach it can use it "
            "(see SECURITY in the README before exposing a server)",
            what,
            host,
        )


class DrainingServer(uvicorn.Server):
    """Uvicorn's server, exiting 0 after a signal-initiated drain.

    Uvicorn re-raises the signal once it has shut down, so the process dies of it; a
    drained SIGTERM is a requested, clean exit, and orchestrators read it as one.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGTERM, signal.SIGINT) and sig in self._captured_signals:
            self._captured_signals.remove(sig)
