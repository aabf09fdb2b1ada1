"""A test handler whose requests tell it what to do: echo, stream, sleep, raise, or die."""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from podium import Context, Handler, InvalidInput


class EchoHandler(Handler):
    """Answers each request with what it saw; ``options`` in the manifest tune loading."""

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        time.sleep(float(context.manifest.options.get("load_delay", 0)))
        if context.manifest.options.get("fail_load"):
            raise RuntimeError("this model refuses to load")

    def inference(self, batch: list[Any]) -> list[Any]:
        journal = self.context.manifest.options.get("journal")
        if journal:
            with open(journal, "a") as file:
                file.writelines(f"{request!r}\n" for request in batch)
        for index, request in enumerate(batch):
            if isinstance(request, dict):
                if request.get("bad_part") == "index":
                    self.context.send_partial(len(batch), {"part": "nowhere"})
                if request.get("bad_part") == "type":
                    self.context.send_partial(index, object())
                for part in range(int(request.get("stream", 0))):
                    self.context.send_partial(index, {"part": part})
                act(request)
        pid = os.getpid()
        return [
            {
                "echo": request if not isinstance(request, bytes) else request.hex(),
                "batch_size": len(batch),
                "pid": pid,
                **({"value": float("nan")} if _asks(request, "answer_nan") else {}),
            }
            for request in batch
        ]


def _asks(request: Any, key: str) -> bool:
    return isinstance(request, dict) and bool(request.get(key))


def act(request: dict[str, Any]) -> None:
    if "sleep" in request:
        time.sleep(float(request["sleep"]))
    if request.get("crash") == "exit":
        os._exit(3)
    if request.get("crash") == "segfault":
        ctypes.string_at(0)
    if "raise" in request:
        raise ValueError(request["raise"])
    if "invalid" in request:
        raise InvalidInput(request["invalid"])
