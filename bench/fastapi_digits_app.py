"""The digits ONNX model served the simple way: one FastAPI app, one sync endpoint.

    DIGITS_MODEL=path/to/model.onnx uvicorn bench.fastapi_digits_app:app --loop uvloop \
        --http httptools --no-access-log

A pydantic body (64 floats), one onnxruntime call per request, the same answer as podium's
onnx handler with labels (label, confidence, probabilities). ``bench/v2.py`` starts it as
the plain-FastAPI baseline.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(
    os.environ["DIGITS_MODEL"], sess_options=options, providers=["CPUExecutionProvider"]
)
app = FastAPI(title="digits (plain FastAPI)")


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "Healthy"}


@app.post("/predictions/digits")
def predict(pixels: list[float]) -> dict[str, Any]:
    [logits] = session.run(None, {"x": np.asarray([pixels], dtype=np.float32)})
    scores = np.exp(logits[0] - logits[0].max())
    scores /= scores.sum()
    best = int(scores.argmax())
    return {
        "label": str(best),
        "confidence": round(float(scores[best]), 6),
        "probabilities": {str(i): round(float(p), 6) for i, p in enumerate(scores)},
    }
