"""Built-in ``torch`` handler: TorchScript, torch.export programs, or an eager model.

What ``model_file`` is decides how it loads:

    model.pt2                     a ``torch.export`` program (``torch.export.load``)
    model.safetensors             weights for an eager model: options ``model_class``
                                  (``"model.py:DigitsNet"``, a file in the archive) and
                                  ``model_kwargs``; safetensors never runs code
    model.pt / .pth + model_class a ``state_dict`` (``torch.load(weights_only=True)``)
    model.pt / .torchscript / ... TorchScript (``torch.jit.load``)

Inputs come from the manifest's ``signature`` (``{"inputs": {"x": {"dtype": "float32",
"shape": [null, 64]}}}``; the option ``signature`` is read when the manifest has none, for
``podium archive --option``), or from the program itself for ``.pt2``. Without either, the
model takes one float32 input named ``input`` and every request is a batch along its
first axis. Requests and answers are described in ``podium.handlers.tensors``; the model
runs once per batch under ``torch.inference_mode``.

Options, besides those of ``tensors``:

    threads       ``torch.set_num_threads`` (default: the worker's share of the cores)
    device        "cpu", "cuda", "cuda:1", ... (default: the context's device if it is not
                  "cpu", else CUDA when available, else the CPU)
    format        "torchscript", "export" or "eager", when the suffix does not tell
    model_class   "file.py:Class" for the eager path; ``model_kwargs`` its keyword arguments
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from podium.errors import InvalidInput
from podium.handler import Context
from podium.handlers.specs import TensorSpec, read_signature
from podium.handlers.tensors import TensorHandler

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".torchscript", ".ptl", ".jit")
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
FORMATS = ("torchscript", "export", "eager")


def model_format(path: PurePath, options: Mapping[str, Any]) -> str:
    """How a model file loads: ``export``, ``eager`` or ``torchscript``, from the option
    ``format``, else the suffix (ValueError when neither tells). ``podium archive`` asks
    too, so a model this cannot place is refused before it is archived."""
    explicit = options.get("format")
    if explicit:
        if explicit not in FORMATS:
            raise ValueError(f'option "format" must be torchscript, export or eager: {explicit}')
        return str(explicit)
    if path.suffix == ".pt2":
        return "export"
    if path.suffix == ".safetensors" or "model_class" in options:
        return "eager"
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    raise ValueError(f'{path.name}: unknown model format; set the option "format"')


class TorchHandler(TensorHandler):
    """Serves a PyTorch model in any of its three saved forms."""

    model: Any
    device: Any
    output_names: list[str] | None
    outputs: list[TensorSpec] | None

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        import torch

        if context.model_file is None:
            raise ValueError("the torch handler needs model_file in the manifest")
        torch.set_num_threads(max(1, int(self.options.get("threads", context.threads))))
        self.device = torch.device(self._device_name(torch))
        signature = context.manifest.signature or self.options.get("signature")
        inputs = read_signature(signature, "inputs")
        outputs = read_signature(signature, "outputs")
        self.output_names = [spec.name for spec in outputs] if outputs else None
        self.outputs = outputs
        form = model_format(context.model_file, self.options)
        if form == "export":
            program = torch.export.load(str(context.model_file))
            inputs = inputs or program_inputs(program)
            self.model = program.module()
            if self.device.type != "cpu":
                self.model = self.model.to(self.device)
        elif form == "eager":
            self.model = self._load_eager(context.model_file)
        else:
            with warnings.catch_warnings():
                # Deprecated in favour of torch.export, still the format most models ship in.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(  # type: ignore[no-untyped-call]
                    str(context.model_file), map_location=self.device
                )
            self.model.eval()
        self.inputs = inputs or [TensorSpec("input", "float32", None)]
        if any(spec.dtype == "string" for spec in self.inputs):
            raise ValueError("the torch handler takes number tensors only, not strings")
        context.logger.info(
            "torch model %s (%s) on %s: inputs %s",
            context.model_file.name,
            form,
            self.device,
            [(spec.name, spec.dtype, spec.shape) for spec in self.inputs],
        )

    def output_specs(self) -> list[TensorSpec] | None:
        return self.outputs

    def _device_name(self, torch: Any) -> str:
        explicit = self.options.get("device")
        if explicit:
            return str(explicit)
        if self.context.device != "cpu":
            return self.context.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load_eager(self, path: Path) -> Any:
        import torch

        spec = self.options.get("model_class")
        if not spec or ":" not in str(spec):
            raise ValueError('an eager model needs the option "model_class": "file.py:Class"')
        file_name, _, class_name = str(spec).partition(":")
        from podium.handlers import import_file

        module = import_file(self.context.model_dir, file_name)
        model_class = getattr(module, class_name, None)
        if model_class is None:
            raise ValueError(f"{file_name} has no class {class_name}")
        model = model_class(**dict(self.options.get("model_kwargs") or {}))
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval().to(self.device)

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        tensors = [torch.from_numpy(arrays[spec.name]).to(self.device) for spec in self.inputs]
        try:
            with torch.inference_mode():
                result = self.model(*tensors)
        except (RuntimeError, ValueError, IndexError) as error:
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise InvalidInput(f"the model rejected the input: {first}") from None
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, np.ndarray]:
        if isinstance(result, dict):
            return {str(key): to_numpy(value) for key, value in result.items()}
        values = list(result) if isinstance(result, tuple | list) else [result]
        names = self.output_names
        if names is None or len(names) != len(values):
            names = ["output"] if len(values) == 1 else [f"output_{i}" for i in range(len(values))]
        return {name: to_numpy(value) for name, value in zip(names, values, strict=True)}


def to_numpy(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        array: np.ndarray = tensor.numpy()
        return array
    return np.asarray(value)


def program_inputs(program: Any) -> list[TensorSpec] | None:
    """The user inputs of a ``torch.export`` program: names, dtypes, shapes (symbolic → *)."""
    import torch

    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    specs: list[TensorSpec] = []
    for name in program.graph_signature.user_inputs:
        node = placeholders.get(name)
        value = node.meta.get("val") if node is not None else None
        if not isinstance(value, torch.Tensor):
            return None
        dims = tuple(d if isinstance(d, int) else None for d in value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        specs.append(TensorSpec(str(name), dtype, dims or None))
    return specs or None
