"""``ts.metrics.metric_type_enum``."""

from podium.compat.torchserve.context import MetricTypes

__all__ = ["MetricTypes"]
