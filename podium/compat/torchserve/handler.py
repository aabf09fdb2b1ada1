"""The ``torchserve`` handler: runs a handler written for TorchServe, unchanged.

The archive's TorchServe handler is found the way TorchServe finds it: ``file.py`` or
``module`` (a file in the archive) or ``module:function``; a name that is no file in the
archive is one of TorchServe's built-in handlers (``ts.torch_handler.<name>``, which needs
the ``torchserve`` package). A module with the function (``handle`` unless named) is used
as is, and called once with ``data=None`` to initialize; otherwise the one class the module
defines is instantiated, then ``initialize(context)``. When ``ts`` cannot be imported,
Podium's own ``ts`` modules (``podium/compat/torchserve/shim``) stand in for it.

Requests reach the handler as TorchServe delivers them: ``data`` is a list with one dict per
request. A raw body is under ``"body"``: parsed JSON for ``application/json``, ``str`` for
``text/*``, else a ``bytearray``. Form fields (multipart or urlencoded) and query parameters
are keys of their own (``messages.decode_request``). Request headers are read with
``context.get_request_header``.

Each response is encoded as TorchServe does (``bytes`` and ``str`` as they are, anything
else as JSON) with the status and headers the handler set on the context. A
``PredictionException`` answers every request of the batch with its code and message.
A handler streams as on TorchServe, with ``send_intermediate_predict_response`` from
``ts.handler_utils.utils`` (or the older ``ts.protocol.otf_message_handler``); Podium's
function stands in for TorchServe's own, installed or not: each call sends a chunk, the
returned value is the last.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import yaml

from podium.compat.torchserve.context import Context as TorchServeContext
from podium.compat.torchserve.context import Metrics, RequestProcessor
from podium.compat.torchserve.messages import decode_request, encode, error_answer
from podium.errors import HandlerError
from podium.handler import Context, Handler
from podium.handlers import import_file
from podium.version import __version__

SHIM = Path(__file__).with_name("shim")
MAR_MANIFEST = "MAR-INF/MANIFEST.json"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
MAX_FORM_PARTS = 1000
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

log = logging.getLogger("podium.handlers.torchserve")

EntryPoint = Callable[[Any, TorchServeContext], Any]

STREAMING_MODULES = ("ts.handler_utils.utils", "ts.protocol.otf_message_handler")
"""Where TorchServe handlers import ``send_intermediate_predict_response`` from (the
second is the older, deprecated place)."""


class TorchServeHandler(Handler):
    """Adapts a TorchServe handler to Podium's lifecycle."""

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        model_dir = context.model_dir
        described = _mar_manifest(context)
        yaml_config = _model_yaml_config(model_dir, described)
        use_torchserve_modules()
        # TorchServe runs a worker in the model's folder with that folder importable.
        os.chdir(model_dir)
        if str(model_dir) not in sys.path:
            sys.path.insert(0, str(model_dir))
        gpu = gpu_id(context)
        self.torchserve_context = TorchServeContext(
            context.model_name,
            str(model_dir),
            described,
            context.manifest.batch_size,
            gpu,
            __version__,
            metrics=Metrics(),
            model_yaml_config=yaml_config,
        )
        self.torchserve_context.send_part = self._send_part
        spec = str(context.manifest.options.get("handler") or described["model"]["handler"])
        self.entry_point, initialize = load_entry_point(spec, model_dir)
        util = importlib.import_module("ts.utils.util")
        self.prediction_exception: type[Exception] = util.PredictionException
        initialize(self.torchserve_context)

    def handle(self, requests: list[Any], context: Context) -> list[Any]:
        data: list[dict[str, Any]] = []
        processors: list[RequestProcessor] = []
        for request in requests:
            values, headers = decode_request(request)
            data.append(values)
            processors.append(RequestProcessor(headers))
        served = self.torchserve_context
        served.request_processor = processors
        served.request_ids = {
            index: str(processor.get_request_property("x-request-id") or uuid.uuid4())
            for index, processor in enumerate(processors)
        }
        served.metrics.request_ids = served.request_ids
        try:
            outputs = self.entry_point(data, served)
        except self.prediction_exception as error:
            code = getattr(error, "error_code", 500)
            message = str(getattr(error, "message", error))
            return [error_answer(code, "PredictionException", message) for _ in requests]
        if not isinstance(outputs, list):
            raise HandlerError(f"handler returned {type(outputs).__name__}, not a list")
        if len(outputs) != len(requests):
            raise HandlerError(
                f"handler returned {len(outputs)} responses for {len(requests)} requests"
            )
        return [
            encode(output, processor) for output, processor in zip(outputs, processors, strict=True)
        ]

    def _send_part(self, index: int, value: Any) -> None:
        processor = self.torchserve_context.request_processor[index]
        self.context.send_partial(index, encode(value, processor))

    def take_metrics(self) -> list[tuple[str, str, str, float, bool]] | None:
        """The handler's custom metrics, when some changed since the last call."""
        return self.torchserve_context.metrics.take()


def gpu_id(context: Context) -> int | None:
    """The GPU a TorchServe handler is given (``system_properties["gpu_id"]``), or None.

    Like TorchServe, workers are spread over the visible GPUs round-robin. torch is only
    imported to count them where an NVIDIA driver is present.
    """
    if context.device.startswith("cuda:"):
        return int(context.device.split(":")[1])
    if not os.path.exists("/dev/nvidiactl") or importlib.util.find_spec("torch") is None:
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return context.worker_id % count if count else None


def use_torchserve_modules() -> None:
    """Make ``import ts`` work: the installed package if there is one, else the shim.

    An installed package's ``send_intermediate_predict_response`` (in either module that
    has one) writes TorchServe's own wire format to a TorchServe socket; Podium's function
    takes its place before the handler imports it.
    """
    if importlib.util.find_spec("ts") is None:
        sys.path.append(str(SHIM))
        return
    for name in STREAMING_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            log.warning("%s cannot be imported: %s", name, error)
            continue
        module.send_intermediate_predict_response = send_intermediate_predict_response  # type: ignore[attr-defined]


def send_intermediate_predict_response(
    ret: Any, req_id_map: Any, message: str = "", code: int = 200, context: Any = None
) -> None:
    """TorchServe's streaming call: ``ret[idx]`` goes out now, as one chunk of the answer to
    request ``idx``, for each ``idx`` of ``req_id_map`` (``context.request_ids``). Status and
    headers are the request's own (``context.set_response_status``), as on TorchServe;
    ``message`` and ``code`` describe the call and are not sent."""
    send = getattr(context, "send_part", None)
    if send is None:
        raise RuntimeError("send_intermediate_predict_response needs the handler's context")
    for idx in req_id_map:
        send(idx, ret[idx])


def load_entry_point(spec: str, model_dir: Path) -> tuple[EntryPoint, Callable[[Any], Any]]:
    """The handler's entry point and its initializer, found as TorchServe finds them."""
    module_part, _, function_name = spec.partition(":")
    module_name = module_part.removesuffix(".py").split("/")[-1]
    if not module_name.isidentifier():
        raise ImportError(f"handler {spec!r} is not a module name")
    module = _import_handler(module_name, model_dir, spec)
    function = getattr(module, function_name or "handle", None)
    if function_name and function is None:
        raise ImportError(f"{module_name} has no function {function_name!r}")
    if inspect.isfunction(function):
        entry: EntryPoint = function
        return entry, lambda context: entry(None, context)
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if len(classes) != 1:
        names = ", ".join(sorted(cls.__name__ for cls in classes)) or "none"
        raise ImportError(
            f"{module_name} must define exactly one handler class or a handle() function "
            f"(classes: {names})"
        )
    service: Any = classes[0]()
    if not callable(getattr(service, "handle", None)):
        raise ImportError(f"{classes[0].__name__} has no handle method")
    return service.handle, service.initialize


def _import_handler(module_name: str, model_dir: Path, spec: str) -> ModuleType:
    if (model_dir / f"{module_name}.py").is_file():
        return import_file(model_dir, f"{module_name}.py")
    if (model_dir / module_name).is_dir():
        return importlib.import_module(module_name)
    try:
        return importlib.import_module(f"ts.torch_handler.{module_name}")
    except ModuleNotFoundError:
        raise ImportError(
            f"handler {spec!r} is neither a file in the archive nor a TorchServe built-in "
            "handler (built-ins such as image_classifier need the torchserve package)"
        ) from None


def _mar_manifest(context: Context) -> dict[str, Any]:
    """MAR-INF/MANIFEST.json as the archive holds it (or as torch-model-archiver would
    have written it, for a Podium archive naming a TorchServe handler)."""
    path = context.model_dir / MAR_MANIFEST
    if path.is_file():
        described: dict[str, Any] = orjson.loads(path.read_bytes())
        return described
    manifest = context.manifest
    model: dict[str, Any] = {
        "modelName": manifest.name,
        "modelVersion": manifest.version,
        "handler": manifest.options.get("handler", ""),
    }
    if manifest.model_file:
        model["serializedFile"] = manifest.model_file
    return {"runtime": "python", "model": model}


def _model_yaml_config(model_dir: Path, described: dict[str, Any]) -> dict[str, Any]:
    name = described.get("model", {}).get("configFile")
    if not name:
        return {}
    config = yaml.safe_load((model_dir / name).read_text())
    return config if isinstance(config, dict) else {}
