"""``ts.metrics.dimension``."""

from podium.handlers.torchserve_context import Dimension

__all__ = ["Dimension"]
