"""A test handler that answers each request with what it was given: over V2, its input
arrays become the output tensors again. ``options``: ``delay`` (seconds each batch takes)
and ``journal`` (a file each batch appends a line to when it starts)."""

from __future__ import annotations

import time
from typing import Any

from podium import Handler


class IdentityHandler(Handler):
    def inference(self, batch: list[Any]) -> list[Any]:
        options = self.context.manifest.options
        journal = options.get("journal")
        if journal:
            with open(journal, "a") as file:
                file.write(f"{len(batch)}\n")
        time.sleep(float(options.get("delay", 0)))
        return batch
