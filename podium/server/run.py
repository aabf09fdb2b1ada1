"""Run the inference server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import logging
import signal
from types import FrameType

import uvicorn

from podium.server.app import PodiumApp
from podium.settings import Settings

GC_THRESHOLD = 10_000


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish (up to ``drain_timeout``)."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = PodiumApp(settings)
    # Everything imported so far lives as long as the server: move it out of the
    # collector's sight, and collect less often (the hot path allocates little that
    # forms cycles; see bench/RESULTS.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
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
    DrainingServer(config).run()


class DrainingServer(uvicorn.Server):
    """Uvicorn's server, exiting 0 after a signal-initiated drain.

    Uvicorn re-raises the signal once it has shut down, so the process dies of it; a
    drained SIGTERM is a requested, clean exit, and orchestrators read it as one.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGTERM, signal.SIGINT) and sig in self._captured_signals:
            self._captured_signals.remove(sig)
