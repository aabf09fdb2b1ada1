"""The worker process: load one model version through its handler, then run batches.

Started by the supervisor as ``python -m podium.backends.local.worker FD PARENT`` with one
end of a socketpair on ``FD``; it dies with its front end (pid ``PARENT``). It reads a ``Load``
message, initializes the handler once, answers ``Ready`` (or ``LoadFailed``), then answers
every ``Batch`` with a ``Result`` until ``Stop`` or until the socket closes (the front end
is gone), and exits.

Each request is decoded for the handler, and each answer encoded, here by the codec of the
protocol that asked (``podium.protocols``), not in the front end: model objects (numpy
arrays included) never cross the wire.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium.archive import MANIFEST_PATH, Manifest
from podium.archive.requirements import DEPS
from podium.backends.local import wire
from podium.errors import HandlerError, InvalidInput
from podium.handler import Context, Handler
from podium.protocols import NATIVE, codec
from podium.protocols.codec import Model
from podium.protocols.native import NonFinite, encode_value
from podium.types import Answer

Request = tuple[str, Any]
"""An ``InferenceRequest`` off the wire: a plain (codec tag, payload) tuple."""
GC_THRESHOLD = 10_000
METRICS_INTERVAL = 0.5
"""Seconds between two reports of a handler's custom metrics to the front end."""

log = logging.getLogger("podium.worker")


class Runner:
    """Runs batches through one handler, isolating the requests that make it fail."""

    def __init__(self, handler: Handler, context: Context, debug: bool) -> None:
        self.handler = handler
        self.context = context
        self.debug = debug
        self.send: Callable[[wire.Message], None] | None = None
        """Where parts of streamed answers go (None until serving: warm-up drops them)."""
        self._metrics_sent = 0.0
        self._batch_id = 0
        self._offset = 0
        self._size = 0
        self._streamed = False
        self._requests: list[Request] = []
        self.model = Model(context.model_name, context.model_version)
        context.partial_sink = self.send_partial

    def signature(self) -> dict[str, Any] | None:
        """The model's inputs and outputs: what the handler says (it knows what it answers),
        else the manifest's when it describes tensors. A handler that fails to say is
        logged, not fatal."""
        try:
            said = self.handler.signature()
        except Exception:
            log.exception("%s.signature() failed", type(self.handler).__name__)
            said = None
        declared = self.context.manifest.signature
        if said is None and declared and ("inputs" in declared or "outputs" in declared):
            return declared
        return said

    def metrics_update(self) -> wire.HandlerMetrics | None:
        """The handler's custom metrics, if it has new ones and none went out lately."""
        take = getattr(self.handler, "take_metrics", None)
        now = time.monotonic()
        if take is None or now - self._metrics_sent < METRICS_INTERVAL:
            return None
        values = take()
        if not values:
            return None
        self._metrics_sent = now
        return wire.HandlerMetrics(values)

    def send_partial(self, index: int, part: Any) -> None:
        """``context.send_partial``: one part of request ``index``'s answer, sent now (a
        protocol that cannot stream, V2, gets only the handler's last value)."""
        if self.send is None:
            return
        if not (type(index) is int and 0 <= index < self._size):
            raise IndexError(f"send_partial: no request {index!r} in a batch of {self._size}")
        if not codec(self._requests[index][0]).streams:
            return
        try:
            status, content_type, body, headers = encode_value(part)
        except (TypeError, NonFinite) as error:
            raise HandlerError(f"streamed part is not JSON-serialisable: {error}") from None
        self._streamed = True
        answer = (status, content_type, body, headers)
        self.send(wire.Partial(self._batch_id, self._offset + index, answer))

    def run_all(self, requests: list[Request], batch_id: int = 0) -> list[Answer]:
        """Answer a message's requests in handler batches of at most ``batch_size``."""
        self._batch_id = batch_id
        size = self.context.manifest.batch_size
        if len(requests) <= size:
            return self.run(requests)
        answers: list[Answer] = []
        for start in range(0, len(requests), size):
            answers += self.run(requests[start : start + size], start)
        return answers

    def run(self, requests: list[Request], offset: int = 0) -> list[Answer]:
        """Answer one handler batch: each request decoded by its codec for the handler, each
        answer encoded by the codec of the request it answers."""
        self._offset = offset
        self._size = len(requests)
        self._requests = requests
        self._streamed = False
        try:
            tag = requests[0][0]
            if all(request[0] == tag for request in requests):  # one protocol: the rule
                one = codec(tag)
                payloads = [payload for _, payload in requests]
                return one.encode_all(self._handle(one.decode_all(payloads)), payloads, self.model)
            return self._run_mixed(requests)
        except Exception as error:
            if len(requests) == 1 or self._streamed:
                if not isinstance(error, InvalidInput):
                    log.exception("handler failed")
                # A batch that streamed parts already is not run again: each request's
                # stream ends with the error.
                return [codec(tag).error(error, payload, self.debug) for tag, payload in requests]
        # One bad request must not fail the others batched with it: retry one by one.
        return [
            response
            for index, request in enumerate(requests)
            for response in self.run([request], offset + index)
        ]

    def _run_mixed(self, requests: list[Request]) -> list[Answer]:
        inputs = [codec(tag).decode(payload) for tag, payload in requests]
        values = self._handle(inputs)
        return [
            codec(tag).encode(value, payload, self.model)
            for value, (tag, payload) in zip(values, requests, strict=True)
        ]

    def _handle(self, inputs: list[Any]) -> list[Any]:
        responses = self.handler.handle(inputs, self.context)
        if len(responses) != len(inputs):
            raise HandlerError(
                f"handler returned {len(responses)} responses for {len(inputs)} requests"
            )
        return responses


def load(message: wire.Load) -> Runner:
    from podium.handlers import load_handler

    model_dir = Path(message.model_dir)
    manifest = Manifest.model_validate_json((model_dir / MANIFEST_PATH).read_bytes())
    deps = model_dir / DEPS
    if deps.is_dir():  # the model's own requirements come first
        sys.path.insert(0, str(deps))
    context = Context(
        model_name=manifest.name,
        model_version=manifest.version,
        model_dir=model_dir,
        manifest=manifest,
        worker_id=message.worker_id,
        threads=int(os.environ.get("PODIUM_THREADS", "1")),
        logger=logging.getLogger(f"podium.model.{manifest.name}"),
    )
    handler = load_handler(manifest, model_dir)
    handler.initialize(context)
    runner = Runner(handler, context, message.debug)
    warm_up(runner, manifest.warmup)
    return runner


def warm_up(runner: Runner, requests: list[Any]) -> None:
    """Run the archive's warm-up requests as one batch; any failure fails the load."""
    if not requests:
        return
    batch = [(NATIVE, request) for request in requests]
    for index, (status, _, body, _) in enumerate(runner.run_all(batch)):
        if status != 200:
            raise RuntimeError(f"warm-up request {index} failed with {status}: {body[:200]!r}")


def serve(channel: wire.Channel) -> int:
    """The worker's loop; returns the exit status."""
    message = channel.receive()
    if not isinstance(message, wire.Load):
        return 2
    try:
        runner = load(message)
    except BaseException as error:
        if not message.quiet:
            log.exception("model failed to load")
        channel.send(wire.LoadFailed(f"{type(error).__name__}: {error}"))
        return 1
    # The model is loaded for good: keep the collector from re-scanning it on every pass.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    channel.send(wire.Ready(os.getpid(), runner.signature()))
    runner.send = channel.send
    while True:
        message = channel.receive()
        if message is None or isinstance(message, wire.Stop):
            return 0
        if isinstance(message, wire.Batch):
            responses = runner.run_all(message.requests, message.batch_id)
            channel.send(wire.Result(message.batch_id, responses))
            update = runner.metrics_update()
            if update is not None:
                channel.send(update)


PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Exit when the front end ``parent`` does, even inside a long handler call.

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``);
    elsewhere a daemon thread watches the parent's pid. Either way, a front end killed
    with SIGKILL leaves no worker behind.
    """
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(0)
            return
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="podium-parent-watch", daemon=True).start()


def main() -> None:
    # The front end owns signals: Ctrl-C in a terminal must not kill workers mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(sys.argv) > 2:
        die_with(int(sys.argv[2]))
    logging.basicConfig(
        level=os.environ.get("PODIUM_WORKER_LOG_LEVEL", "WARNING"),
        format="%(asctime)s worker[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        status = serve(wire.Channel(sock))
    except (BrokenPipeError, ConnectionResetError):
        status = 0
    finally:
        sock.close()
    sys.exit(status)


if __name__ == "__main__":
    main()
