"""Built-in ``onnx`` handler: an ONNX model run by an onnxruntime ``InferenceSession``.

The model's own signature (input names, element types, shapes with dynamic axes) drives
validation; requests and answers are described in ``podium.handlers.tensors``. Every
instance of a batch goes through one ``session.run`` (a model whose batch axis is fixed
at 1 runs once per instance).

Options (the manifest's ``options``), besides those of ``tensors``:

    threads     intra-op threads (default: the worker's share of the cores); inter-op is 1
    device      "cpu" or "cuda" (default: CUDA when onnxruntime has its provider, else
                the CPU)
    providers   an explicit list of execution providers, overriding ``device``
"""

from __future__ import annotations

from typing import Any

import numpy as np

from podium.errors import InvalidInput
from podium.handler import Context
from podium.handlers.specs import TensorSpec
from podium.handlers.tensors import TensorHandler

ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def input_spec(node: Any) -> TensorSpec:
    """An onnxruntime ``NodeArg`` → a ``TensorSpec`` (symbolic or unknown dims are dynamic)."""
    dtype = ONNX_TYPES.get(node.type)
    if dtype is None:
        raise ValueError(f'input "{node.name}" has unsupported type {node.type}')
    shape = node.shape
    dims = (
        None
        if shape is None
        else tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)
    )
    if dims is not None and not dims:
        dims = None
    return TensorSpec(node.name, dtype, dims)


class OnnxHandler(TensorHandler):
    """Serves an ``.onnx`` model file with onnxruntime."""

    session: Any
    output_names: list[str]
    per_instance: bool

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        import onnxruntime as ort

        if context.model_file is None:
            raise ValueError("the onnx handler needs model_file in the manifest")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(self.options.get("threads", context.threads)))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(context.model_file), sess_options=options, providers=self._providers(ort)
        )
        self.inputs = [input_spec(node) for node in self.session.get_inputs()]
        self.output_names = [node.name for node in self.session.get_outputs()]
        # A batch axis fixed at 1 (common in exports without dynamic axes): run one by one.
        self.per_instance = all(
            spec.shape is not None and spec.shape[0] == 1 for spec in self.inputs
        )
        context.logger.info(
            "onnx model %s: inputs %s, providers %s",
            context.model_file.name,
            [(spec.name, spec.dtype, spec.shape) for spec in self.inputs],
            self.session.get_providers(),
        )

    def output_specs(self) -> list[TensorSpec]:
        return [input_spec(node) for node in self.session.get_outputs()]

    def _providers(self, ort: Any) -> list[str]:
        explicit = self.options.get("providers")
        if explicit:
            return [str(provider) for provider in explicit]
        available = ort.get_available_providers()
        device = str(self.options.get("device") or self.context.device)
        wants_cuda = device.startswith("cuda") or "device" not in self.options
        if wants_cuda and "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.per_instance:
            total = len(next(iter(arrays.values())))
            parts = [
                self._run_once({name: array[i : i + 1] for name, array in arrays.items()})
                for i in range(total)
            ]
            return {
                name: np.concatenate([part[name] for part in parts], axis=0)
                for name in self.output_names
            }
        return self._run_once(arrays)

    def _run_once(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        try:
            results = self.session.run(self.output_names, feeds)
        except InvalidArgument as error:
            raise InvalidInput(f"the model rejected the input: {error}") from None
        return {
            name: np.asarray(value) for name, value in zip(self.output_names, results, strict=True)
        }
