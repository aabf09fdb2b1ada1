"""The context a TorchServe handler is given, as TorchServe's ``ts.context`` defines it.

Handlers read ``context.system_properties`` (``model_dir``, ``gpu_id``, ``batch_size``),
``context.manifest`` (MAR-INF/MANIFEST.json), ``context.model_yaml_config``, per-request
headers and ids, and set per-request response status and headers; ``context.metrics``
takes their custom metrics. The same classes serve as ``ts.context.Context`` when the
``torchserve`` package is absent, and are duck-type compatible with TorchServe's own when
it is installed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("podium.handler.metrics")


class Headers(dict[str, Any]):
    """Request headers, looked up without regard to case (HTTP names are case-blind)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class RequestProcessor:
    """One request's headers in, and its response status and headers out."""

    def __init__(self, request_header: dict[str, Any]) -> None:
        self._status_code = 200
        self._reason_phrase: str | None = None
        self._response_header: dict[str, str] = {}
        self._request_header = request_header

    def get_request_property(self, key: str) -> Any:
        return self._request_header.get(key)

    def get_request_properties(self) -> dict[str, Any]:
        return self._request_header

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self._status_code = code
        self._reason_phrase = reason_phrase

    def get_response_status_code(self) -> int:
        return self._status_code

    def get_response_status_phrase(self) -> str | None:
        return self._reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        self._response_header[key] = value

    def get_response_headers(self) -> dict[str, str]:
        return self._response_header

    def get_response_header(self, key: str) -> str | None:
        return self._response_header.get(key)


class MetricTypes(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Dimension:
    """A metric dimension: a name and a value."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"


class Metric:
    """A metric a handler declared with ``add_metric_to_cache`` (or got with ``get_metric``)."""

    def __init__(
        self,
        store: Metrics,
        name: str,
        unit: str,
        dimension_names: list[str],
        metric_type: MetricTypes,
    ) -> None:
        self.store = store
        self.name = name
        self.unit = unit
        self.dimension_names = dimension_names
        self.metric_type = metric_type

    def add_or_update(
        self, value: float, dimension_values: list[str] | None = None, request_id: str = ""
    ) -> None:
        labels = tuple(zip(self.dimension_names, dimension_values or [], strict=False))
        self.store.record(self.name, value, self.unit, labels, self.metric_type)

    def update(
        self, value: float, request_id: str = "", dimensions: list[Dimension] | None = None
    ) -> None:
        labels = tuple((d.name, d.value) for d in dimensions or [])
        self.store.record(self.name, value, self.unit, labels, self.metric_type)


class Metrics:
    """``context.metrics``: the custom metrics a handler emits.

    Counters add up, gauges and times keep their last value; ``values`` holds them by
    name and dimensions, and each one is logged at debug level.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.request_ids: Any = None
        self._declared: dict[str, Metric] = {}
        self._kinds: dict[str, tuple[str, bool]] = {}
        self._changed = False

    def take(self) -> list[tuple[str, str, str, float, bool]] | None:
        """Every value as (name, "dimension=value,...", unit, value, is_counter), if any
        changed since the last call."""
        if not self._changed:
            return None
        self._changed = False
        taken = []
        for (name, labels), value in self.values.items():
            unit, counter = self._kinds[name]
            dimensions = ",".join(f"{key}={label}" for key, label in labels)
            taken.append((name, dimensions, unit, value, counter))
        return taken

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        labels: tuple[tuple[str, str], ...] = (),
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        key = (name, labels)
        counter = metric_type is MetricTypes.COUNTER
        if counter:
            value = self.values.get(key, 0.0) + value
        self.values[key] = float(value)
        self._kinds[name] = (unit, counter)
        self._changed = True
        log.debug("metric %s%s = %s %s", name, dict(labels), value, unit)

    def add_metric_to_cache(
        self,
        metric_name: str,
        unit: str = "count",
        dimension_names: list[str] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> Metric:
        metric = Metric(self, metric_name, unit, dimension_names or [], metric_type)
        self._declared[metric_name] = metric
        return metric

    def get_metric(
        self, metric_name: str, metric_type: MetricTypes = MetricTypes.COUNTER
    ) -> Metric:
        return self._declared.get(metric_name) or self.add_metric_to_cache(
            metric_name, metric_type=metric_type
        )

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str = "count",
        idx: Any = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> None:
        labels = tuple((d.name, d.value) for d in dimensions or [])
        self.record(name, value, unit, labels, metric_type)

    def add_counter(
        self,
        name: str,
        value: float,
        idx: Any = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> None:
        self.add_metric(name, value, "count", idx, dimensions, metric_type)

    def add_time(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "ms",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_size(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "MB",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_percent(
        self,
        name: str,
        value: float,
        idx: Any = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        self.add_metric(name, value, "percent", idx, dimensions, metric_type)

    def add_error(self, name: str, value: float, dimensions: list[Dimension] | None = None) -> None:
        self.add_metric(name, value, "", None, dimensions, MetricTypes.COUNTER)


class Context:
    """What a TorchServe handler is given: fixed at load, plus the current batch's requests."""

    def __init__(
        self,
        model_name: str,
        model_dir: str,
        manifest: dict[str, Any],
        batch_size: int,
        gpu: int | None,
        server_version: str,
        limit_max_image_pixels: bool = True,
        metrics: Metrics | None = None,
        model_yaml_config: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.manifest = manifest
        self._system_properties = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "Podium",
            "server_version": server_version,
            "limit_max_image_pixels": limit_max_image_pixels,
        }
        self.request_ids: dict[int, str] | None = None
        self.request_processor: list[RequestProcessor] = []
        self.metrics = metrics if metrics is not None else Metrics()
        self.model_yaml_config = model_yaml_config or {}
        self.stopping_criteria: Any = None
        self.send_part: Callable[[int, Any], None] | None = None
        """Sends a part of request ``idx``'s answer (``send_intermediate_predict_response``)."""

    @property
    def system_properties(self) -> dict[str, Any]:
        return self._system_properties

    def get_request_id(self, idx: int = 0) -> str | None:
        return None if self.request_ids is None else self.request_ids.get(idx)

    def get_request_header(self, idx: int, key: str) -> Any:
        return self.request_processor[idx].get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, Any]:
        return self.request_processor[idx].get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> tuple[int, str | None]:
        processor = self.request_processor[idx]
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        if idx < len(self.request_processor):
            self.request_processor[idx].report_status(code, reason_phrase=phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for processor in self.request_processor:
            processor.report_status(code, reason_phrase=phrase)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        return self.request_processor[idx].get_response_headers()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.request_processor[idx].add_response_property(key, value)

    def get_sequence_id(self, idx: int) -> Any:
        return self.request_processor[idx].get_request_property("ts_request_sequence_id")
