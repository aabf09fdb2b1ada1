"""Run the inference server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import logging
import secrets
import signal
import socket
from types import FrameType

import uvicorn

from podium.frontends.rest.admission import EdgeAdmission
from podium.frontends.rest.app import PodiumApp
from podium.frontends.rest.hosts import allowed_hosts, is_loopback
from podium.frontends.rest.protocol import limited_protocol
from podium.frontends.rest.token_file import write_secret
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
    guard = inference_token(settings)
    for what, sock in zip(("inference API", "management API"), sockets, strict=False):
        host, port = sock.getsockname()[:2]
        log.info("%s on http://%s:%d", what, f"[{host}]" if ":" in host else host, port)
    warn_if_exposed(settings.host, "inference API", guarded=guard is not None)
    app = PodiumApp(settings, token=token, inference_token=guard)
    # Everything imported so far lives as long as the server: move it out of the
    # collector's sight, and collect less often (the hot path allocates little that
    # forms cycles; see bench/RESULTS.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=limited_protocol(settings.client_timeout, edge_admission(app, settings, sockets[0])),
        lifespan="on",
        access_log=settings.access_log,
        # Podium answers what is left at drain_timeout itself (503 ShuttingDown); uvicorn's
        # own cut, a second later, would answer a plain-text 500.
        timeout_graceful_shutdown=int(settings.drain_timeout) + 2,
        log_level="debug" if settings.debug else "info",
        server_header=False,
    )
    DrainingServer(config, app).run(sockets=sockets)


def edge_admission(
    app: PodiumApp, settings: Settings, inference: socket.socket
) -> EdgeAdmission | None:
    """Refusals at the HTTP layer for the inference port (off with the access log, which
    would not see them)."""
    if settings.access_log:
        return None
    return EdgeAdmission(
        app.dataplane,
        inference.getsockname()[1],
        allowed_hosts(settings.host, settings.allowed_hosts),
        app.inference_token,
        hold=settings.hold_refused,
    )


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
    # Not inheritable (Python's default, said out loud): a worker process must never hold
    # the port, or a dead front end would leave it accepting connections nobody answers.
    sock.set_inheritable(False)
    return sock


def management_token(settings: Settings) -> str:
    """The configured token, or a new one written to ``token_file`` (mode 0600)."""
    if settings.management_token:
        return settings.management_token
    token = secrets.token_urlsafe(32)
    write_secret(settings.token_file, token)
    log.info("management token written to %s", settings.token_file)
    return token


def inference_token(settings: Settings) -> str | None:
    """The inference API's token: needed when it listens beyond loopback, unless auth is
    turned off; generated and written next to the management token if not given."""
    if settings.inference_token:
        return settings.inference_token
    if is_loopback(settings.host) or not settings.auth:
        return None
    token = secrets.token_urlsafe(32)
    path = settings.token_file.with_name(settings.token_file.name + ".inference")
    write_secret(path, token)
    log.info("inference token written to %s", path)
    return token


def warn_if_exposed(host: str, what: str, guarded: bool) -> None:
    if not is_loopback(host) and not guarded:
        log.warning(
            "the %s listens on %s, not loopback, WITHOUT authentication: anyone who can "
            "reach it can use it (see SECURITY.md before exposing a server)",
            what,
            host,
        )


class DrainingServer(uvicorn.Server):
    """Uvicorn's server, exiting 0 after a signal-initiated drain.

    Uvicorn re-raises the signal once it has shut down, so the process dies of it; a
    drained SIGTERM is a requested, clean exit, and orchestrators read it as one.
    """

    def __init__(self, config: uvicorn.Config, app: PodiumApp) -> None:
        super().__init__(config)
        self.podium = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.podium.begin_drain()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGTERM, signal.SIGINT) and sig in self._captured_signals:
            self._captured_signals.remove(sig)
