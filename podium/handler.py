"""The public lifecycle of model code: ``Handler`` and the ``Context`` it is given.

A worker process creates one handler, calls ``initialize(context)`` once, then calls
``handle(requests, context)`` for every batch. ``requests`` is a list with one entry per
client request: the parsed JSON value when the client sent JSON, else the raw ``bytes``.
``handle`` returns one JSON-serialisable response (or ``bytes``) per request, in order.

    class Doubler(Handler):
        def inference(self, batch):
            return [2 * x for x in batch]

To reject one request, raise ``podium.InvalidInput("what is wrong")``: a batch that raises
is retried one request at a time, so only the offending request gets the 400.

To stream, call ``context.send_partial(index, part)`` from ``handle`` for request ``index``
of the batch: the client gets a chunked response, the parts as they are sent and the value
``handle`` returns for that request last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.archive import Manifest


@dataclass
class Context:
    """What a handler knows about where it runs."""

    model_name: str
    model_version: str
    model_dir: Path
    manifest: Manifest
    worker_id: int = 0
    device: str = "cpu"
    threads: int = 1
    """Threads the model library may use: the worker's share of the cores."""
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("podium.handler"))
    partial_sink: Callable[[int, Any], None] | None = field(default=None, repr=False)
    """Where ``send_partial`` sends parts (set by the worker; None drops them, as in warm-up)."""

    def send_partial(self, index: int, part: Any) -> None:
        """Send a part of the answer to request ``index`` of the current batch now.

        The client receives a chunked response: the parts in the order sent, then the
        value ``handle`` returns for the request. The first part's status and headers are
        the response's.
        """
        if self.partial_sink is not None:
            self.partial_sink(index, part)

    @property
    def model_file(self) -> Path | None:
        """The serialized model named in the manifest, if any."""
        name = self.manifest.model_file
        return self.model_dir / name if name else None


class Handler:
    """Base class for model code; override the stages you need.

    The default ``handle`` runs ``postprocess(inference(preprocess(requests)))`` and checks
    that it got one response per request.
    """

    context: Context

    def initialize(self, context: Context) -> None:
        """Load the model from ``context.model_dir``; called once per worker."""
        self.context = context

    def preprocess(self, requests: list[Any]) -> Any:
        """Validate raw requests and turn them into model input."""
        return requests

    def inference(self, batch: Any) -> Any:
        """Run the model on the whole batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement inference()")

    def postprocess(self, outputs: Any) -> list[Any]:
        """Turn model output into one response per request."""
        return list(outputs)

    def signature(self) -> dict[str, Any] | None:
        """What the model takes and answers, for V2 model metadata; called once a worker
        has initialized, and only when the manifest has no ``signature``. Same format::

            {"inputs": {"x": {"dtype": "float32", "shape": [None, 64]}},
             "outputs": {"label": {"dtype": "string", "shape": [None]}}}

        (``None`` in a shape: any size; dtypes are numpy names or ``string``.)"""
        return None

    def handle(self, requests: list[Any], context: Context) -> list[Any]:
        """Run the three stages in order on one batch; the server calls this."""
        responses = self.postprocess(self.inference(self.preprocess(requests)))
        if len(responses) != len(requests):
            raise RuntimeError(
                f"{type(self).__name__} returned {len(responses)} responses "
                f"for {len(requests)} requests"
            )
        return responses
