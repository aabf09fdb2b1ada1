"""Run the inference server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from podium.frontends.rest.admission import EdgeAdmission
from podium.frontends.rest.app import PodiumApp
from podium.frontends.rest.hosts import allowed_hosts, is_loopback
from podium.frontends.rest.protocol import limited_protocol
from podium.frontends.rest.token_file import write_secret
from podium.settings import Settings

if TYPE_CHECKING:
    from podium.frontends.grpc import GrpcServer

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
    check_grpc_port(settings)
    for what, sock in zip(("inference API", "management API"), sockets, strict=False):
        host, port = sock.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        log.info("%s on %s (docs: %s/docs)", what, url, url)
    warn_if_exposed(settings.host, "inference API", guarded=guard is not None)
    app = PodiumApp(settings, token=token, inference_token=guard)
    grpc = grpc_server(app, settings)
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
    DrainingServer(config, app, grpc).run(sockets=sockets)


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


def check_grpc_port(settings: Settings) -> None:
    """Refuse now a gRPC port that cannot be bound. The gRPC server itself binds it only
    once the event loop runs (grpc.aio ties a server to the loop it is made in); this
    probe makes a port in use fail before anything has started, as the HTTP ports do."""
    if not settings.grpc_port:
        return
    if settings.grpc_port in (settings.port, settings.management_port):
        raise SystemExit("the gRPC port must differ from the inference and management ports")
    listen(settings.host, settings.grpc_port).close()


def grpc_server(app: PodiumApp, settings: Settings) -> GrpcServer | None:
    """The gRPC front end, unless it is turned off (``grpc_port`` 0) or grpcio is not
    installed (a warning then: the HTTP APIs are served alone). Imported only here, so a
    server without gRPC never loads grpcio."""
    if not settings.grpc_port:
        return None
    # Workers are forked and exec'd at once: grpcio's fork handlers have nothing to protect,
    # and with the server's threads running they only log that they skipped each fork.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    try:
        from podium.frontends.grpc import GrpcServer
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in ("grpc", "google"):
            raise
        log.warning(
            "gRPC port %d is off: grpcio is not installed (pip install podium[grpc])",
            settings.grpc_port,
        )
        return None
    server = GrpcServer(app.dataplane, settings, app.inference_token)
    log.info("gRPC inference API on %s", server.address)
    return server


def management_token(settings: Settings) -> str:
    """The configured token, or a new one written to ``token_file`` (mode 0600)."""
    if settings.management_token:
        return settings.management_token
    token = secrets.token_urlsafe(32)
    write_secret(settings.token_file, token)
    log.info("management token written to %s", settings.token_file)
    return token


def inference_token(settings: Settings) -> str | None:
    """The inference API's token. A given one is always enforced, on loopback and with
    --no-auth too. Otherwise one is needed when the API listens beyond loopback, unless auth
    is turned off: generated and written next to the management token (``.inference``)."""
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
    """Uvicorn's server, exiting 0 after a signal-initiated drain, with the gRPC front end
    (if any) started and stopped on the same event loop.

    Uvicorn re-raises the signal once it has shut down, so the process dies of it; a
    drained SIGTERM is a requested, clean exit, and orchestrators read it as one.
    """

    def __init__(
        self, config: uvicorn.Config, app: PodiumApp, grpc: GrpcServer | None = None
    ) -> None:
        super().__init__(config)
        self.podium = app
        self.grpc = grpc

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.grpc is not None:
            await self.grpc.start()  # before the lifespan: a failed bind leaves nothing to stop
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.podium.begin_drain()
        if self.grpc is not None:
            # Calls in flight end before uvicorn's shutdown stops the workers: answered, or
            # refused ShuttingDown at drain_timeout (so a second more of grace suffices).
            # Meanwhile the HTTP side refuses new requests 503 and finishes its own.
            await self.grpc.stop(self.podium.settings.drain_timeout + 1)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGTERM, signal.SIGINT) and sig in self._captured_signals:
            self._captured_signals.remove(sig)
