"""``ts.utils.util``: the helpers TorchServe handlers use."""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
from types import ModuleType
from typing import Any

import yaml

log = logging.getLogger(__name__)


class PredictionException(Exception):
    """Raise from a handler to answer the whole batch with ``error_code`` and ``message``."""

    def __init__(self, message: str, error_code: int = 500) -> None:
        self.message = message
        self.error_code = error_code
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} : {self.error_code}"


def list_classes_from_module(module: ModuleType, parent_class: type | None = None) -> list[type]:
    """The classes defined in ``module`` itself (optionally only subclasses of a parent)."""
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if parent_class is not None:
        return [cls for cls in classes if issubclass(cls, parent_class)]
    return classes


def load_label_mapping(mapping_file_path: str) -> dict[str, str] | None:
    """Read ``{"class index": "label"}`` (a list value means its last item); None if absent."""
    if not os.path.isfile(mapping_file_path):
        log.warning("%r is missing: answers will not include class names", mapping_file_path)
        return None
    with open(mapping_file_path) as file:
        mapping = json.load(file)
    if not isinstance(mapping, dict):
        raise ValueError('the index-to-name mapping must be a JSON object {"0": "label"}')
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(index): str(name) for index, name in enumerate(names)}
    labels: dict[str, str] = {}
    for key, value in mapping.items():
        label = value[-1] if isinstance(value, list) else value
        if not isinstance(label, str):
            raise ValueError("labels in the index-to-name mapping must be text")
        labels[key] = label
    return labels


def map_class_to_label(
    probs: list[list[float]],
    mapping: dict[str, str] | None = None,
    lbl_classes: list[list[Any]] | None = None,
) -> list[dict[str, float]]:
    """Per row, ``{label: probability}`` for the given classes (all classes by default)."""
    if not isinstance(probs, list):
        raise TypeError("convert the probabilities to a list before mapping them")
    if mapping is not None and not isinstance(mapping, dict):
        raise TypeError("the mapping must be a dict")
    classes = lbl_classes if lbl_classes is not None else itertools.repeat(range(len(probs[0])))
    return [
        {
            (mapping[str(c)] if mapping is not None else str(c)): p
            for c, p in zip(row_classes, row, strict=False)
        }
        for row_classes, row in zip(classes, probs, strict=False)
    ]


def get_yaml_config(yaml_file_path: str) -> dict[str, Any]:
    with open(yaml_file_path) as file:
        config = yaml.safe_load(file)
    return config if isinstance(config, dict) else {}
