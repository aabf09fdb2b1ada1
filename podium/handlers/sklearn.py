"""Built-in ``sklearn`` handler: a fitted estimator or pipeline from joblib, pickle or skops.

Each request is one instance or a list of instances; the answer mirrors it:

    "great film"                       → {"label": "positive", "probabilities": {...}}
    ["great film", "dull"]             → [{...}, {...}]
    [5.1, 3.5, 1.4, 0.2]               → one numeric instance
    [[5.1, 3.5, 1.4, 0.2], [...]]      → several
    {"inputs": ...}, {"text": ...}     → the same, wrapped in an object

Labels come from the manifest's ``labels`` (indexed by class position) or the estimator's
``classes_``. Pickled models are trusted code: they load only from the model store.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from podium.errors import InvalidInput
from podium.handler import Context, Handler
from podium.handlers import regroup

INPUT_KEYS = ("inputs", "instances", "text", "data")


def load_estimator(path: Path) -> Any:
    """Load a model file by its suffix (``.skops`` is loaded without pickle)."""
    if path.suffix == ".skops":
        from skops.io import get_untrusted_types, load

        return load(path, trusted=get_untrusted_types(file=path))
    if path.suffix in (".pkl", ".pickle"):
        with path.open("rb") as file:
            return pickle.load(file)
    import joblib

    return joblib.load(path)


def split_instances(request: Any) -> tuple[list[Any], bool]:
    """One request → (instances, whether the request was a single instance)."""
    if isinstance(request, np.ndarray):  # a V2 tensor
        request = request.tolist()
    if isinstance(request, dict):
        for key in INPUT_KEYS:
            if key in request:
                return split_instances(request[key])
        raise InvalidInput(f"expected one of the fields {', '.join(INPUT_KEYS)}")
    if isinstance(request, bytes):
        try:
            return [request.decode("utf-8")], True
        except UnicodeDecodeError:
            raise InvalidInput("body is not valid UTF-8 text") from None
    if isinstance(request, str | int | float) and not isinstance(request, bool):
        return [request], True
    if isinstance(request, list):
        if not request:
            raise InvalidInput("empty list of instances")
        if all(isinstance(item, int | float) and not isinstance(item, bool) for item in request):
            return [request], True
        if all(isinstance(item, str | list) for item in request):
            return list(request), False
    raise InvalidInput("an instance must be a string, a list of numbers, or a list of those")


class SklearnHandler(Handler):
    """Serves ``predict_proba`` (or ``predict``) of a scikit-learn estimator."""

    estimator: Any
    labels: list[Any]

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        if context.model_file is None:
            raise ValueError("the sklearn handler needs model_file in the manifest")
        self.estimator = load_estimator(context.model_file)
        classes = list(getattr(self.estimator, "classes_", []))
        self.labels = list(context.manifest.labels or classes)
        self._shapes: list[tuple[int, bool]] = []

    def signature(self) -> dict[str, Any]:
        """Numbers in (``n_features_in_`` of them) or, for a text pipeline, strings; the
        label, confidence and probabilities out (``prediction`` without ``predict_proba``)."""
        features = getattr(self.estimator, "n_features_in_", None)
        inputs = (
            {"dtype": "float64", "shape": [None, int(features)]}
            if features is not None
            else {"dtype": "string", "shape": [None]}
        )
        if not hasattr(self.estimator, "predict_proba"):
            outputs: dict[str, Any] = {"prediction": {"shape": [None]}}
        else:
            outputs = {
                "label": {"dtype": "string", "shape": [None]},
                "confidence": {"dtype": "float64", "shape": [None]},
                "probabilities": {"dtype": "float64", "shape": [None, len(self.labels)]},
            }
        return {"inputs": {"input": inputs}, "outputs": outputs}

    def preprocess(self, requests: list[Any]) -> list[Any]:
        instances: list[Any] = []
        self._shapes = []
        for request in requests:
            items, single = split_instances(request)
            instances.extend(items)
            self._shapes.append((len(items), single))
        return instances

    def inference(self, batch: list[Any]) -> Any:
        data = batch if isinstance(batch[0], str) else np.asarray(batch, dtype=np.float64)
        try:
            if hasattr(self.estimator, "predict_proba"):
                return self.estimator.predict_proba(data)
            return self.estimator.predict(data)
        except ValueError as error:
            raise InvalidInput(f"the model rejected the input: {error}") from None

    def postprocess(self, outputs: Any) -> list[Any]:
        answers = [self._answer(row) for row in outputs]
        return regroup(answers, self._shapes)

    def _answer(self, row: Any) -> Any:
        if np.ndim(row) == 0:
            return {"prediction": row.item() if hasattr(row, "item") else row}
        best = int(np.argmax(row))
        label = self.labels[best] if best < len(self.labels) else best
        if hasattr(label, "item"):
            label = label.item()
        names = [str(self.labels[i]) if i < len(self.labels) else str(i) for i in range(len(row))]
        return {
            "label": label,
            "confidence": round(float(row[best]), 6),
            "probabilities": {name: round(float(p), 6) for name, p in zip(names, row, strict=True)},
        }
