"""Finding the handler an archive names: a built-in, or code shipped in the archive.

``handler`` in the manifest is one of

- a built-in name: ``sklearn``, ``onnx``, ``torch``, ``transformers``, or ``torchserve``
  (a TorchServe handler, named by the ``handler`` option, run unchanged);
- ``file.py:ClassName``: a ``podium.Handler`` subclass in that file;
- ``file.py``: the file's one ``Handler`` subclass, or its module-level
  ``handle(requests, context)`` function.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from podium.archive import Manifest
from podium.handler import Context, Handler

BUILTINS = {
    "onnx": "podium.handlers.onnx:OnnxHandler",
    "sklearn": "podium.handlers.sklearn:SklearnHandler",
    "torch": "podium.handlers.torch:TorchHandler",
    "torchserve": "podium.compat.torchserve.handler:TorchServeHandler",
    "transformers": "podium.handlers.transformers:TransformersHandler",
}


Shape = tuple[int, bool]
"""Per request: how many instances it held, and whether it was a single instance."""


def regroup(answers: list[Any], shapes: list[Shape]) -> list[Any]:
    """Per-instance answers → one response per request: an answer for a single instance,
    a list of answers for a list."""
    responses: list[Any] = []
    start = 0
    for count, single in shapes:
        chunk = answers[start : start + count]
        responses.append(chunk[0] if single else chunk)
        start += count
    return responses


class FunctionHandler(Handler):
    """Wraps a module-level ``handle(requests, context)`` function."""

    def __init__(self, function: Callable[[list[Any], Context], list[Any]]) -> None:
        self.function = function

    def handle(self, requests: list[Any], context: Context) -> list[Any]:
        return list(self.function(requests, context))


def load_handler(manifest: Manifest, model_dir: Path) -> Handler:
    """Create (not yet initialize) the handler the manifest names."""
    spec = manifest.handler
    if spec in BUILTINS:
        module_name, class_name = BUILTINS[spec].split(":")
        handler_class = getattr(importlib.import_module(module_name), class_name)
        instance: Handler = handler_class()
        return instance
    file_name, _, class_name = spec.partition(":")
    module = import_file(model_dir, file_name)
    if class_name:
        found = getattr(module, class_name, None)
        if not (inspect.isclass(found) and issubclass(found, Handler)):
            raise ImportError(f"{file_name} has no Handler subclass named {class_name}")
        return found()
    return _only_handler(module, file_name)


def import_file(model_dir: Path, file_name: str) -> ModuleType:
    """Import a Python file shipped in the archive (refusing paths that leave it)."""
    path = (model_dir / file_name).resolve()
    if not path.is_relative_to(model_dir.resolve()) or not path.is_file():
        raise ImportError(f"handler file {file_name} is not in the archive")
    # The archive's folder goes on the path so the handler can import its extra files.
    if str(model_dir) not in sys.path:
        sys.path.insert(0, str(model_dir))
    # Imported under another name if it is named like a module already imported
    # (json.py): it is the archive's file, and json stays json.
    module_name = path.stem if path.stem not in sys.modules else f"_archive_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file_name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _only_handler(module: ModuleType, file_name: str) -> Handler:
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Handler)
        and value.__module__ == module.__name__
    ]
    if len(classes) == 1:
        instance: Handler = classes[0]()
        return instance
    function = getattr(module, "handle", None)
    if not classes and callable(function):
        return FunctionHandler(function)
    if classes:
        names = ", ".join(sorted(cls.__name__ for cls in classes))
        raise ImportError(f"{file_name} defines several handlers ({names}); name one")
    raise ImportError(f"{file_name} defines no Handler subclass and no handle() function")
