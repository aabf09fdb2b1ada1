"""The same two models as custom MLServer runtimes: the peer ``bench/v2.py`` measures.

MLServer serves a model through a runtime class named in its ``model-settings.json``;
these load the same files podium serves (the digits ONNX model, the NSMC pipeline) and
answer the same outputs over V2: ``label``, ``confidence``, ``probabilities`` for digits,
``label`` and ``confidence`` for NSMC. ``parameters.uri`` in the settings points at the
model file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse

NSMC_LABELS = ("negative", "positive")


class DigitsRuntime(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        uri = self.settings.parameters.uri
        self.session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        [logits] = self.session.run(None, {"x": pixels.reshape(-1, 64)})
        scores = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        best = scores.argmax(axis=1)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                StringCodec.encode_output("label", [str(i) for i in best]),
                NumpyCodec.encode_output("confidence", scores.max(axis=1)),
                NumpyCodec.encode_output("probabilities", scores),
            ],
        )


def _clean_text() -> Any:
    path = Path(os.environ["NSMC_HANDLER"])
    spec = importlib.util.spec_from_file_location("nsmc_handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.clean_text


class NsmcRuntime(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        self.pipeline = joblib.load(self.settings.parameters.uri)
        self.clean_text = _clean_text()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        probabilities = self.pipeline.predict_proba([self.clean_text(t) for t in texts])
        best = probabilities.argmax(axis=1)
        labels = [NSMC_LABELS[int(self.pipeline.classes_[i])] for i in best]
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                StringCodec.encode_output("label", labels),
                NumpyCodec.encode_output("confidence", probabilities.max(axis=1)),
            ],
        )
