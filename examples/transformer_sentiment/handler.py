"""Korean movie-review sentiment with a transformer: MiniLM sentence embeddings + a linear head.

This module is copied into the model archive and loaded by file path in a worker. It
builds on podium's built-in ``transformers`` handler, run as ``feature-extraction``: the
built-in tokenizes the batch, sorts it by length, pads each sub-batch only to its own
longest review and mean-pools all-MiniLM-L6-v2's token vectors into one normalised
sentence embedding per review. This handler then applies the logistic-regression head
that ``train.py`` fitted on those embeddings (``head.json``: weights, bias, classes).

Requests are the same as the NSMC example's: a review, a list of reviews,
``{"text": review or list}`` or a raw UTF-8 body; the answer is
``{"label": "positive", "confidence": 0.9731}``, or a list of those, in order. So
``POST /predict?model=transformer_sentiment`` and ``?model=nsmc_sentiment`` are
interchangeable.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

import podium
from podium.handlers.transformers import TransformersHandler

DEFAULT_LABELS = ("negative", "positive")

Floats = npt.NDArray[np.float32]


def head_probabilities(embeddings: Floats, weights: Floats, bias: Floats) -> Floats:
    """Class probabilities of a fitted logistic regression (binary or multinomial)."""
    logits = embeddings @ weights.T + bias
    if logits.shape[1] == 1:  # binary: one logit for the second class
        logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    probabilities: Floats = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities


class SentimentHandler(TransformersHandler):
    """Answer a sentiment label and its probability for each review."""

    weights: Floats
    bias: Floats
    classes: list[int]
    sentiments: list[str]

    def initialize(self, context: podium.Context) -> None:
        """Load the encoder (the built-in handler) and the head named as the model file."""
        super().initialize(context)
        if self.settings.task != "feature-extraction":
            raise RuntimeError("the transformer_sentiment archive needs task=feature-extraction")
        if context.model_file is None:
            raise RuntimeError("the manifest names no model file (head.json)")
        head = json.loads(context.model_file.read_text(encoding="utf-8"))
        self.weights = np.asarray(head["coef"], dtype=np.float32)
        self.bias = np.asarray(head["intercept"], dtype=np.float32)
        self.classes = [int(c) for c in head["classes"]]
        self.sentiments = list(context.manifest.labels or DEFAULT_LABELS)
        if max(self.classes) >= len(self.sentiments):
            raise RuntimeError(f"{len(self.sentiments)} labels for classes {self.classes}")

    def inference(self, batch: list[str]) -> Floats:
        """Embed the whole batch (sub-batched by length), then score it with the head."""
        embeddings = super().inference(batch)
        if not len(embeddings):
            return np.empty((0, len(self.classes)), dtype=np.float32)
        return head_probabilities(embeddings, self.weights, self.bias)

    def answer(self, row: Floats) -> dict[str, Any]:
        """Name the most probable class of one row of probabilities."""
        best = int(np.argmax(row))
        return {
            "label": self.sentiments[self.classes[best]],
            "confidence": round(float(row[best]), 4),
        }
