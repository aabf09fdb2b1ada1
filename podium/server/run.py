"""Run the inference server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

import uvicorn

from podium.server.app import PodiumApp
from podium.settings import Settings


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish (up to ``drain_timeout``)."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = PodiumApp(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.drain_timeout),
        log_level="debug" if settings.debug else "info",
        server_header=False,
    )
    uvicorn.Server(config).run()
