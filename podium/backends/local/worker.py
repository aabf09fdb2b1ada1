"""The worker process: load one model version through its handler, then run batches.

Started by the supervisor as ``python -m podium.backends.local.worker FD PARENT`` with one
end of a socketpair on ``FD``; it dies with its front end (pid ``PARENT``). It reads a ``Load``
message, initializes the handler once, answers ``Ready`` (or ``LoadFailed``), then answers
every ``Batch`` with a ``Result`` until ``Stop`` or until the socket closes (the front end
is gone), and exits.

Responses are encoded to JSON here, not in the front end, so model objects (numpy arrays
included) never cross the wire.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import orjson

from podium.archive import MANIFEST_PATH, Manifest
from podium.archive.requirements import DEPS
from podium.backends.local import wire
from podium.errors import HandlerError, InvalidInput, PodiumError
from podium.handler import Context, Handler
from podium.types import Answer, Response

JSON = "application/json"
BINARY = "application/octet-stream"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
GC_THRESHOLD = 10_000
METRICS_INTERVAL = 0.5
"""Seconds between two reports of a handler's custom metrics to the front end."""

log = logging.getLogger("podium.worker")


def encode_response(value: Any) -> Response:
    """One handler response → status, content type and body (an error answer when the
    value cannot be encoded)."""
    if isinstance(value, BaseException):
        return encode_error(value, debug=False)
    try:
        return encode_value(value)
    except NonFinite as error:
        return encode_error(HandlerError(f"response is not valid JSON: {error}"), False)
    except TypeError as error:
        return encode_error(HandlerError(f"response is not JSON-serialisable: {error}"), False)


def encode_value(value: Any) -> Response:
    """``bytes`` as they are, a ``Response`` as it is, anything else as JSON (raises
    ``TypeError`` when it is not JSON-serialisable)."""
    if type(value) is Response:
        return value  # already encoded (the torchserve handler sets status and headers)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(200, BINARY, bytes(value))
    try:
        body = orjson.dumps(value, option=JSON_OPTIONS)
    except TypeError:
        body = exact_json(value)  # integers past 64 bits; raises if still not JSON
    # orjson writes NaN and infinities as null: refuse them rather than answer wrongly.
    if b"null" in body and not all_finite(value):
        raise NonFinite("the answer holds NaN or Infinity, which JSON cannot carry")
    return Response(200, JSON, body)


class NonFinite(ValueError):
    """A number in an answer that JSON cannot carry."""


def exact_json(value: Any) -> bytes:
    """JSON through the standard library, which writes integers of any size exactly."""

    def default(item: Any) -> Any:
        if hasattr(item, "tolist"):  # numpy arrays and scalars
            return item.tolist()
        raise TypeError(f"Type is not JSON serializable: {type(item).__name__}")

    try:
        text = json.dumps(value, default=default, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise NonFinite(str(error)) from None
    return text.encode()


def all_finite(value: Any) -> bool:
    """Whether every float in ``value`` (numpy arrays included) is finite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list | tuple):
            stack += item
        elif (
            hasattr(item, "dtype")
            and getattr(item.dtype, "kind", "") in "fc"
            and not bool(numpy.isfinite(item).all())
        ):
            return False
    return True


def encode_error(error: BaseException, debug: bool) -> Response:
    if not isinstance(error, PodiumError):
        message = f"{type(error).__name__}: {error}"
        if debug:
            message += "\n" + "".join(traceback.format_exception(error))
        error = HandlerError(message)
    return Response(error.status, JSON, orjson.dumps(error.body()))


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
        context.partial_sink = self.send_partial

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
        """``context.send_partial``: one part of request ``index``'s answer, sent now."""
        if self.send is None:
            return
        if not (type(index) is int and 0 <= index < self._size):
            raise IndexError(f"send_partial: no request {index!r} in a batch of {self._size}")
        try:
            status, content_type, body, headers = encode_value(part)
        except (TypeError, NonFinite) as error:
            raise HandlerError(f"streamed part is not JSON-serialisable: {error}") from None
        self._streamed = True
        answer = (status, content_type, body, headers)
        self.send(wire.Partial(self._batch_id, self._offset + index, answer))

    def run_all(self, payloads: list[Any], batch_id: int = 0) -> list[Answer]:
        """Answer a message's payloads in handler batches of at most ``batch_size``."""
        self._batch_id = batch_id
        size = self.context.manifest.batch_size
        if len(payloads) <= size:
            return self.run(payloads)
        answers: list[Answer] = []
        for start in range(0, len(payloads), size):
            answers += self.run(payloads[start : start + size], start)
        return answers

    def run(self, payloads: list[Any], offset: int = 0) -> list[Answer]:
        self._offset = offset
        self._size = len(payloads)
        self._streamed = False
        try:
            return [encode_response(value) for value in self._handle(payloads)]
        except Exception as error:
            if len(payloads) == 1 or self._streamed:
                if not isinstance(error, InvalidInput):
                    log.exception("handler failed")
                # A batch that streamed parts already is not run again: each request's
                # stream ends with the error.
                return [encode_error(error, self.debug)] * len(payloads)
        # One bad request must not fail the others batched with it: retry one by one.
        return [
            response
            for index, payload in enumerate(payloads)
            for response in self.run([payload], offset + index)
        ]

    def _handle(self, payloads: list[Any]) -> list[Any]:
        responses = self.handler.handle(payloads, self.context)
        if len(responses) != len(payloads):
            raise HandlerError(
                f"handler returned {len(responses)} responses for {len(payloads)} requests"
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
    for index, (status, _, body, _) in enumerate(runner.run_all(requests)):
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
    channel.send(wire.Ready(os.getpid()))
    runner.send = channel.send
    while True:
        message = channel.receive()
        if message is None or isinstance(message, wire.Stop):
            return 0
        if isinstance(message, wire.Batch):
            responses = runner.run_all(message.payloads, message.batch_id)
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
