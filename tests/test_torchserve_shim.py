"""Podium's ``ts`` stand-in, imported as a handler would import it (torchserve absent)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from podium.compat.torchserve.context import Context, Metrics, MetricTypes
from podium.compat.torchserve.handler import SHIM


@pytest.fixture
def util() -> Iterator[ModuleType]:
    sys.path.append(str(SHIM))
    try:
        yield importlib.import_module("ts.utils.util")
    finally:
        sys.path.remove(str(SHIM))
        for name in [n for n in sys.modules if n == "ts" or n.startswith("ts.")]:
            del sys.modules[name]


def test_label_mappings_in_every_documented_shape(util: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "index_to_name.json"
    assert util.load_label_mapping(str(path)) is None
    path.write_text(json.dumps({"0": ["n01", "tench"], "1": "goldfish"}))
    assert util.load_label_mapping(str(path)) == {"0": "tench", "1": "goldfish"}
    path.write_text(json.dumps({"object_type_names": ["cat", "dog"]}))
    assert util.load_label_mapping(str(path)) == {"0": "cat", "1": "dog"}
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        util.load_label_mapping(str(path))
    path.write_text('{"0": 5}')
    with pytest.raises(ValueError, match="text"):
        util.load_label_mapping(str(path))


def test_class_mapping_and_prediction_exception(util: ModuleType) -> None:
    mapped = util.map_class_to_label([[0.1, 0.9]], {"0": "no", "1": "yes"})
    assert mapped == [{"no": 0.1, "yes": 0.9}]
    assert util.map_class_to_label([[0.7]], lbl_classes=[[3]]) == [{"3": 0.7}]
    with pytest.raises(TypeError):
        util.map_class_to_label("not a list")
    error = util.PredictionException("too long", 413)
    assert (error.message, error.error_code, str(error)) == ("too long", 413, "too long : 413")
    assert util.list_classes_from_module(util) == [util.PredictionException]
    assert util.list_classes_from_module(util, KeyError) == []


def test_context_headers_status_and_metrics() -> None:
    from podium.compat.torchserve.context import Headers, RequestProcessor

    context = Context("m", "/tmp", {"model": {}}, 4, None, "0.1")
    context.request_processor = [RequestProcessor(Headers({"x-token": "abc"}))]
    context.request_ids = {0: "id-0"}
    assert context.get_request_header(0, "X-Token") == "abc"
    assert context.get_request_id(0) == "id-0" and context.get_request_id(1) is None
    context.set_response_status(404, "gone")
    context.set_response_content_type(0, "text/csv")
    assert context.get_response_status(0) == (404, "gone")
    assert context.get_response_headers(0) == {"content-type": "text/csv"}
    context.set_all_response_status(201)
    assert context.get_response_status(0) == (201, "")
    metrics: Metrics = context.metrics
    metrics.add_counter("Hits", 2)
    metrics.add_counter("Hits", 3)
    metrics.add_time("Took", 1.5)
    cached = metrics.add_metric_to_cache("Sizes", "MB", ["kind"], MetricTypes.GAUGE)
    cached.add_or_update(7, ["big"])
    assert metrics.get_metric("Sizes") is cached
    taken = sorted(metrics.take() or [])
    assert taken == [
        ("Hits", "", "count", 5.0, True),
        ("Sizes", "kind=big", "MB", 7.0, False),
        ("Took", "", "ms", 1.5, False),
    ]
    assert metrics.take() is None  # nothing changed since


def test_import_class_by_dotted_name(util: ModuleType) -> None:
    handler_utils = importlib.import_module("ts.handler_utils.utils")
    assert handler_utils.import_class("pathlib.Path") is Path
    assert handler_utils.import_class("Path", module_prefix="pathlib") is Path
    assert handler_utils.import_class("abc.Iterator", module_prefix="collections") is Iterator
    with pytest.raises(ImportError, match="module name"):
        handler_utils.import_class("OrderedDict")
    with pytest.raises(ImportError, match="not found"):
        handler_utils.import_class("collections.NoSuchThing")
    with pytest.raises(ImportError, match="class name"):
        handler_utils.import_class("")
