"""``ts.handler_utils.timer``: ``@timed`` records a handler stage's duration as a metric
when the model's config asks for it (``handler: {profile: true}`` in model-config.yaml)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any


def timed(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = getattr(self, "context", None)
        config = getattr(context, "model_yaml_config", None) or {}
        handler_config = config.get("handler") if isinstance(config, dict) else None
        if not (isinstance(handler_config, dict) and handler_config.get("profile")):
            return function(self, *args, **kwargs)
        start = time.perf_counter()
        result = function(self, *args, **kwargs)
        elapsed = (time.perf_counter() - start) * 1000
        context.metrics.add_time(f"ts_handler_{function.__name__}", elapsed)  # type: ignore[union-attr]
        return result

    return wrapper
