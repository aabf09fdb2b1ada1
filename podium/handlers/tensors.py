"""What the tensor handlers (``onnx``, ``torch``) share: requests in, arrays out, answers back.

A request is one of

    [0, 3, 16, ...]                        one instance, or a list of them: the model's
    [[0, 3, 16, ...], [...]]               per-instance rank decides which
    {"inputs": ARRAY}                      the same, wrapped
    {"inputs": {"ids": ARRAY, "mask": ARRAY}}   a model with several inputs (or the names
    {"ids": ARRAY, "mask": ARRAY}               at the top level)
    bytes                                  an image (PNG, JPEG, ...; the ``image`` option),
                                           raw pixels (height x width x channels bytes),
                                           or a NumPy ``.npy`` file (never unpickled)

Every instance of a batch is concatenated along axis 0, the model runs once, and the
outputs are split back, one answer per request, mirroring its single/list shape:
``{"label", "confidence", "probabilities"}`` when the manifest has labels, else
``{"outputs": {name: nested lists}}``.

Handler options (the manifest's ``options``) read here:

    max_elements   most values one request may carry (default 10,000,000)
    image          {"width", "height", "mode" ("L", "RGB", ...), "scale", "mean", "std",
                    "layout" ("hwc" or "chw")}: how binary image bodies become an array
    softmax        true when the model outputs logits and the answer wants probabilities
    output         which output the labelled answer reads (default: the first)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.errors import InvalidInput
from podium.handler import Context, Handler
from podium.handlers import regroup
from podium.handlers.images import ImageOptions, decode_image
from podium.handlers.specs import (
    TensorSpec,
    convert_dtype,
    format_shape,
)

MAX_ELEMENTS = 10_000_000
INPUT_KEYS = ("inputs", "instances", "data")


@dataclass
class Batch:
    """Model inputs for a whole batch, and how many instances each request brought."""

    arrays: dict[str, np.ndarray]
    counts: list[tuple[int, bool]]
    """Per request: (instances, whether it was a single instance)."""


@dataclass
class Outputs:
    arrays: dict[str, np.ndarray]
    counts: list[tuple[int, bool]]


class TensorHandler(Handler):
    """Request parsing, validation, batching and answers; subclasses load and ``run``."""

    inputs: list[TensorSpec]
    options: dict[str, Any]
    labels: list[str]
    max_elements: int
    image: ImageOptions | None
    softmax: bool
    output: str | None

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        self.options = dict(context.manifest.options)
        self.labels = list(context.manifest.labels or [])
        self.max_elements = int(self.options.get("max_elements", MAX_ELEMENTS))
        image = self.options.get("image")
        self.image = ImageOptions.parse(image) if image else None
        self.softmax = bool(self.options.get("softmax", False))
        output = self.options.get("output")
        self.output = str(output) if output is not None else None

    # --- the model: subclasses implement ---------------------------------------------

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once on arrays with a batch axis; outputs by name."""
        raise NotImplementedError

    def output_specs(self) -> list[TensorSpec] | None:
        """The model's outputs, where the subclass knows them."""
        return None

    def signature(self) -> dict[str, Any]:
        """Inputs as the model takes them; outputs as answered: ``label``, ``confidence``
        and ``probabilities`` with labels, else the model's own outputs."""
        outputs = self.output_specs() or []
        if self.labels:
            outputs = [
                TensorSpec("label", "string", (None,)),
                TensorSpec("confidence", "float64", (None,)),
                TensorSpec("probabilities", "float64", (None, len(self.labels))),
            ]
        return {
            key: {
                spec.name: {"dtype": spec.dtype, "shape": spec.shape and list(spec.shape)}
                for spec in specs
            }
            for key, specs in (("inputs", self.inputs), ("outputs", outputs))
        }

    # --- the three stages ----------------------------------------------------------------

    def preprocess(self, requests: list[Any]) -> Batch:
        parsed = [self.parse(request) for request in requests]
        arrays: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            parts = [values[spec.name] for values, _, _ in parsed]
            if len(parts) == 1:
                arrays[spec.name] = parts[0]
                continue
            if len({part.shape[1:] for part in parts}) > 1:
                # Retried one request at a time by the worker, where this cannot happen.
                raise InvalidInput(f'input "{spec.name}": requests differ in instance shape')
            arrays[spec.name] = np.concatenate(parts, axis=0)
        return Batch(arrays, [(count, single) for _, count, single in parsed])

    def inference(self, batch: Batch) -> Outputs:
        return Outputs(self.run(batch.arrays), batch.counts)

    def postprocess(self, outputs: Outputs) -> list[Any]:
        total = sum(count for count, _ in outputs.counts)
        for name, array in outputs.arrays.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise RuntimeError(
                    f'output "{name}" has shape {array.shape}, not one row per instance ({total})'
                )
        answers = self.answers(outputs.arrays, total)
        return regroup(answers, outputs.counts)

    # --- requests → arrays -----------------------------------------------------------

    def parse(self, request: Any) -> tuple[dict[str, np.ndarray], int, bool]:
        """One request → (arrays with a batch axis by input name, instances, single)."""
        if isinstance(request, bytes):
            values: dict[str, Any] = {self._only_input().name: self.decode_bytes(request)}
        elif isinstance(request, dict):
            values = self._named_values(request)
        else:
            values = {self._only_input().name: request}
        arrays: dict[str, np.ndarray] = {}
        shapes: set[tuple[int, bool]] = set()
        for spec in self.inputs:
            array, single = self.to_array(spec, values[spec.name])
            arrays[spec.name] = array
            shapes.add((array.shape[0], single))
        if len(shapes) > 1:
            found = ", ".join(f'"{name}": {len(array)}' for name, array in arrays.items())
            raise InvalidInput(f"inputs disagree on the number of instances ({found})")
        count, single = shapes.pop()
        return arrays, count, single

    def _only_input(self) -> TensorSpec:
        if len(self.inputs) != 1:
            names = ", ".join(f'"{spec.name}": ...' for spec in self.inputs)
            raise InvalidInput(f"this model has {len(self.inputs)} inputs: send {{{names}}}")
        return self.inputs[0]

    def _named_values(self, request: dict[str, Any]) -> dict[str, Any]:
        names = [spec.name for spec in self.inputs]
        for key in INPUT_KEYS:
            if key in request and key not in names:
                value = request[key]
                if isinstance(value, dict):
                    return self._check_names(value)
                return {self._only_input().name: value}
        if any(name in request for name in names):
            return self._check_names(request)
        wanted = ", ".join(f'"{name}"' for name in names)
        raise InvalidInput(f'missing field "inputs" (or the model\'s input names: {wanted})')

    def _check_names(self, values: dict[str, Any]) -> dict[str, Any]:
        for spec in self.inputs:
            if spec.name not in values:
                raise InvalidInput(f'missing input "{spec.name}"')
        names = {spec.name for spec in self.inputs}
        unknown = sorted(set(values) - names)
        if unknown:
            wanted = ", ".join(f'"{name}"' for name in sorted(names))
            raise InvalidInput(f'unknown input "{unknown[0]}"; the model takes {wanted}')
        return values

    def to_array(self, spec: TensorSpec, value: Any) -> tuple[np.ndarray, bool]:
        """Validate and convert one input: dtype, rank, shape, size; adds the batch axis."""
        where = f'input "{spec.name}"'
        if isinstance(value, np.ndarray):
            array = value
        else:
            if isinstance(value, list) and not value:
                raise InvalidInput(f"{where}: empty list")
            if value is None or isinstance(value, dict):
                raise InvalidInput(f"{where}: expected an array, got {type(value).__name__}")
            try:
                array = np.asarray(value)
            except (ValueError, TypeError, OverflowError):
                raise InvalidInput(
                    f"{where}: not a rectangular array (lists of different lengths?)"
                ) from None
        if array.size > self.max_elements:
            raise InvalidInput(
                f"{where}: {array.size} values, more than the limit of {self.max_elements}"
            )
        if array.size == 0:
            raise InvalidInput(f"{where}: empty array, shape {format_shape(array.shape)}")
        array = convert_dtype(array, spec.dtype, where)
        if spec.shape is None:
            if array.ndim == 0:
                raise InvalidInput(f"{where}: expected a list of instances, got a scalar")
            return array, False
        rank = len(spec.shape) - 1
        if array.ndim == rank:
            array, single = array[np.newaxis], True
        elif array.ndim == rank + 1:
            single = False
        else:
            raise InvalidInput(
                f"{where}: expected shape {format_shape(spec.shape)} for a list of instances "
                f"or {format_shape(spec.shape[1:])} for one, got {format_shape(array.shape)}"
            )
        for expected, actual in zip(spec.shape[1:], array.shape[1:], strict=True):
            if expected is not None and expected != actual:
                shown = array.shape
                raise InvalidInput(
                    f"{where}: expected shape {format_shape(spec.shape)}, got {format_shape(shown)}"
                )
        return array, single

    # --- binary bodies -----------------------------------------------------------------

    def decode_bytes(self, body: bytes) -> np.ndarray:
        """A ``.npy`` file, an image, or raw pixels → an array (one instance for images)."""
        if body.startswith(b"\x93NUMPY"):
            try:
                array: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise InvalidInput(f"body is not a readable .npy array: {error}") from None
            return array
        if self.image is None:
            raise InvalidInput(
                'this model takes JSON ({"inputs": [...]}) or .npy bytes; '
                'binary images need the handler option "image"'
            )
        return self.shape_image(decode_image(body, self.image, self.max_elements))

    def shape_image(self, pixels: np.ndarray) -> np.ndarray:
        """Fit an (H, W[, C]) image to the model's per-instance shape when it is static."""
        options = self.image
        assert options is not None
        if options.layout == "chw":
            pixels = pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[np.newaxis]
        spec = self._only_input()
        if spec.shape is None:
            return pixels
        dims = spec.shape[1:]
        static = [d or 0 for d in dims]
        if None not in dims and dims != pixels.shape and int(np.prod(static)) == pixels.size:
            return pixels.reshape(static)
        return pixels

    # --- arrays → answers ------------------------------------------------------------

    def answers(self, outputs: dict[str, np.ndarray], total: int) -> list[Any]:
        """One answer per instance."""
        name = self.output or next(iter(outputs))
        if name not in outputs:
            raise RuntimeError(f'option "output": the model has no output "{name}"')
        chosen = outputs[name]
        if self.labels and chosen.ndim == 2 and np.issubdtype(chosen.dtype, np.number):
            scores = chosen.astype(np.float64)
            if self.softmax:
                scores = softmax(scores)
            best = np.argmax(scores, axis=1)
            names = [
                self.labels[i] if i < len(self.labels) else str(i) for i in range(scores.shape[1])
            ]
            return [
                {
                    "label": names[int(best[row])],
                    "confidence": round(float(scores[row, best[row]]), 6),
                    "probabilities": {
                        label: round(float(p), 6)
                        for label, p in zip(names, scores[row], strict=True)
                    },
                }
                for row in range(total)
            ]
        # Numbers stay numpy rows: JSON encodes them the same, and V2 keeps their dtype.
        listed = {
            key: to_json(value) if value.dtype.kind in "OUS" else np.ascontiguousarray(value)
            for key, value in outputs.items()
        }
        return [
            {"outputs": {key: rows[row] for key, rows in listed.items()}} for row in range(total)
        ]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def to_json(array: np.ndarray) -> list[Any]:
    """Rows of an output as plain Python values (strings decoded, floats as floats)."""
    if array.dtype.kind == "O" or array.dtype.kind in "US":
        return [_plain(row) for row in array.tolist()]
    rows: list[Any] = array.tolist()
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
