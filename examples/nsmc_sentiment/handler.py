"""Korean movie-review sentiment (NSMC): a bag-of-n-grams Naive Bayes behind ``podium``.

This module is copied into the model archive and loaded by file path in a worker, so it
imports only podium, joblib, numpy and the standard library.

Each request may be a review (``"정말 재밌게 잘봤습니다!"``), a list of reviews, an object
``{"text": review or list of reviews}``, or a raw UTF-8 body holding one review. A single
review is answered ``{"label": "positive", "confidence": 0.9731}``; a list with a list of
such answers, in order. The whole batch goes through the model in one call.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt

import podium

DEFAULT_LABELS = ("negative", "positive")

# Hangul syllables, compatibility jamo (ㅋㅋ, ㅠㅠ), conjoining jamo, latin letters, digits.
_DROP = re.compile(r"[^가-힣ㄱ-ㅣᄀ-ᇿa-zA-Z0-9\s]+")
_SPACES = re.compile(r"\s+")

Probabilities = npt.NDArray[np.float64]


def clean_text(text: str) -> str:
    """Keep Hangul, latin letters, digits and single spaces; drop everything else."""
    text = _DROP.sub(" ", unicodedata.normalize("NFC", text))
    return _SPACES.sub(" ", text).strip()


def _texts_of(request: Any) -> str | list[str]:
    """Return the review, or list of reviews, one request carries."""
    if isinstance(request, bytes):
        try:
            request = request.decode("utf-8")
        except UnicodeDecodeError:
            raise podium.InvalidInput("body is not valid UTF-8") from None
    elif isinstance(request, dict):
        if "text" not in request:
            raise podium.InvalidInput('missing field "text"')
        request = request["text"]
    elif not isinstance(request, str | list):
        raise podium.InvalidInput(
            'expected a string, a list of strings or an object with "text", '
            f"got {type(request).__name__}"
        )
    return _checked(request)


def _checked(value: Any) -> str | list[str]:
    """Check that ``value`` is a non-blank string or a non-empty list of them."""
    texts: list[Any] = value if isinstance(value, list) else [value]
    if not texts:
        raise podium.InvalidInput('"text" is an empty list')
    if not all(isinstance(text, str) for text in texts):
        raise podium.InvalidInput('"text" must be a string or a list of strings')
    if not all(text.strip() for text in texts):
        raise podium.InvalidInput("a review is empty or blank")
    return texts if isinstance(value, list) else texts[0]


class NsmcHandler(podium.Handler):
    """Answer a sentiment label and its probability for each Korean movie review."""

    pipeline: Any
    labels: list[str]

    def initialize(self, context: podium.Context) -> None:
        """Load the scikit-learn pipeline and the label names from the archive."""
        super().initialize(context)
        if context.model_file is None:
            raise RuntimeError("the manifest names no model file")
        self.pipeline = joblib.load(context.model_file)
        self.labels = list(context.manifest.labels or DEFAULT_LABELS)
        if len(self.labels) != len(self.pipeline.classes_):
            raise RuntimeError(
                f"{len(self.labels)} labels for {len(self.pipeline.classes_)} classes"
            )
        self._shapes: list[int | None] = []

    def signature(self) -> dict[str, Any]:
        """Reviews in; a label and its probability out, per review (V2 model metadata)."""
        return {
            "inputs": {"text": {"dtype": "string", "shape": [None]}},
            "outputs": {
                "label": {"dtype": "string", "shape": [None]},
                "confidence": {"dtype": "float64", "shape": [None]},
            },
        }

    def preprocess(self, requests: list[Any]) -> list[str]:
        """Flatten the batch into one list of cleaned reviews, remembering each shape."""
        texts: list[str] = []
        shapes: list[int | None] = []
        for request in requests:
            found = _texts_of(request)
            if isinstance(found, str):
                shapes.append(None)
                texts.append(clean_text(found))
            else:
                shapes.append(len(found))
                texts.extend(clean_text(text) for text in found)
        self._shapes = shapes
        return texts

    def inference(self, batch: list[str]) -> Probabilities:
        """Score every review of the batch in one ``predict_proba`` call."""
        if not batch:
            return np.empty((0, len(self.labels)))
        return np.asarray(self.pipeline.predict_proba(batch), dtype=np.float64)

    def postprocess(self, outputs: Probabilities) -> list[Any]:
        """Regroup the scores into one answer per request, in the shape it was asked."""
        answers = [self._answer(row) for row in outputs]
        responses: list[Any] = []
        start = 0
        for shape in self._shapes:
            if shape is None:
                responses.append(answers[start])
                start += 1
            else:
                responses.append(answers[start : start + shape])
                start += shape
        return responses

    def _answer(self, row: Probabilities) -> dict[str, Any]:
        """Name the most probable class of one row of probabilities."""
        best = int(np.argmax(row))
        label = self.labels[int(self.pipeline.classes_[best])]
        return {"label": label, "confidence": round(float(row[best]), 4)}
