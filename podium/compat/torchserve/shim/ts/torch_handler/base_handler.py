"""``ts.torch_handler.base_handler``: ``BaseHandler``, the class TorchServe handlers extend.

``initialize`` loads the archive's serialized file: an eager model (``modelFile`` defines
one ``nn.Module`` class, the serialized file holds its ``state_dict``), TorchScript (``.pt``)
or ONNX (``.onnx``, with onnxruntime), and the ``index_to_name.json`` label mapping if the
archive has one. ``handle`` runs ``preprocess → inference → postprocess`` (or
``explain_handle`` for an explanation, ``describe_handle`` for a describe request) and
records ``HandlerTime``.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
import time
from typing import Any

import torch

from ts.utils.util import list_classes_from_module, load_label_mapping

log = logging.getLogger(__name__)


class BaseHandler(abc.ABC):  # noqa: B024 - TorchServe's is abstract with no abstract method
    """Loads TorchScript, eager (state_dict) or ONNX models and runs the handler stages."""

    def __init__(self) -> None:
        self.model: Any = None
        self.mapping: dict[str, str] | None = None
        self.device: torch.device | None = None
        self.initialized = False
        self.context: Any = None
        self.model_pt_path: str | None = None
        self.manifest: dict[str, Any] | None = None
        self.map_location: str | None = None
        self.explain = False
        self.target = 0
        self.profiler_args: dict[str, Any] = {}
        self.model_yaml_config: dict[str, Any] = {}

    def initialize(self, context: Any) -> None:
        """Load the model named by the archive's manifest, on the GPU given if there is one."""
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        properties = context.system_properties
        gpu = properties.get("gpu_id")
        if torch.cuda.is_available() and gpu is not None:
            self.map_location = "cuda"
            self.device = torch.device(f"cuda:{gpu}")
        else:
            self.map_location = "cpu"
            self.device = torch.device("cpu")
        self.manifest = context.manifest
        model_dir = properties.get("model_dir")
        model = self.manifest["model"] if self.manifest else {}
        serialized = model.get("serializedFile")
        self.model_pt_path = os.path.join(model_dir, serialized) if serialized else None
        model_file = model.get("modelFile", "")
        if model_file:
            self.model = self._load_pickled_model(model_dir, model_file, self.model_pt_path)
            self.model.to(self.device)
            self.model.eval()
        elif self.model_pt_path and self.model_pt_path.endswith(".pt"):
            self.model = self._load_torchscript_model(self.model_pt_path)
            self.model.eval()
        elif self.model_pt_path and self.model_pt_path.endswith(".onnx"):
            self.model = self._load_onnx_model(self.model_pt_path)
        else:
            raise RuntimeError("No model weights could be loaded")
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def _load_torchscript_model(self, model_pt_path: str) -> Any:
        return torch.jit.load(model_pt_path, map_location=self.device)

    def _load_onnx_model(self, model_path: str) -> Any:
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if self.map_location == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        return onnxruntime.InferenceSession(model_path, providers=providers)

    def _load_pickled_model(
        self, model_dir: str, model_file: str, model_pt_path: str | None
    ) -> Any:
        if not os.path.isfile(os.path.join(model_dir, model_file)):
            raise RuntimeError("Missing the model.py file")
        module = importlib.import_module(model_file.split(".")[0])
        classes = list_classes_from_module(module)
        if len(classes) != 1:
            raise ValueError(f"Expected only one class as model definition. {classes}")
        model = classes[0]()
        if model_pt_path:
            model.load_state_dict(torch.load(model_pt_path, map_location=self.device))
        return model

    def preprocess(self, data: Any) -> Any:
        """Turn the requests into model input; override for real inputs."""
        return torch.as_tensor(data, device=self.device)

    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the model on the batch, without autograd."""
        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    def postprocess(self, data: Any) -> Any:
        """One response per request: by default the output rows as lists."""
        return data.tolist()

    def handle(self, data: Any, context: Any) -> Any:
        """The entry point: the three stages (or explain/describe) on one batch."""
        start = time.time()
        self.context = context
        if self._is_describe():
            output = [self.describe_handle()]
        else:
            data_preprocess = self.preprocess(data)
            if self._is_explain():
                output = self.explain_handle(data_preprocess, data)
            else:
                output = self.postprocess(self.inference(data_preprocess))
        context.metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return output

    def explain_handle(self, data_preprocess: Any, raw_data: Any) -> Any:
        """Explanations for the first request; the subclass provides ``get_insights``."""
        row = raw_data[0]
        inputs, target = None, 0
        if isinstance(row, dict):
            inputs = row.get("data") or row.get("body")
            target = row.get("target") or 0
        get_insights = getattr(self, "get_insights", None)
        if get_insights is None:
            raise NotImplementedError(f"{type(self).__name__} does not implement get_insights")
        return get_insights(data_preprocess, inputs, target)

    def _is_explain(self) -> bool:
        if self.context and self.context.get_request_header(0, "explain") == "True":
            self.explain = True
            return True
        return False

    def _is_describe(self) -> bool:
        return bool(self.context and self.context.get_request_header(0, "describe") == "True")

    def describe_handle(self) -> Any:
        """What a describe request answers; override to say something."""
        return None

    def get_device(self) -> torch.device | None:
        return self.device
