"""``ts.metrics``: the names handlers use to emit custom metrics."""
