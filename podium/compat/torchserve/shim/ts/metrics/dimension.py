"""``ts.metrics.dimension``."""

from podium.compat.torchserve.context import Dimension

__all__ = ["Dimension"]
