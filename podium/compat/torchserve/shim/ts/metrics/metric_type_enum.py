"""``ts.metrics.metric_type_enum``."""

from podium.handlers.torchserve_context import MetricTypes

__all__ = ["MetricTypes"]
