"""The transformer sentiment model served the simple way: FastAPI, one model call per request.

    TRANSFORMER_BUILD=path/to/build uvicorn bench.fastapi_transformer_app:app --loop uvloop \
        --http httptools --no-access-log

``TRANSFORMER_BUILD`` is the folder ``examples/transformer_sentiment/train.py`` wrote
(``minilm/`` and ``head.json``). A pydantic body, a plain ``def`` endpoint (FastAPI runs it
in its thread pool), and per request: tokenize, run MiniLM, mean-pool, normalise, apply
the head. No batching, no worker processes; torch gets one thread, as podium's worker does
on one core. ``bench/transformer.py`` starts it as the baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModel, AutoTokenizer

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
BUILD = Path(os.environ["TRANSFORMER_BUILD"])
LABELS = ("negative", "positive")
MAX_LENGTH = 128

tokenizer = AutoTokenizer.from_pretrained(BUILD / "minilm", local_files_only=True)
model = AutoModel.from_pretrained(BUILD / "minilm", local_files_only=True).eval()
head = json.loads((BUILD / "head.json").read_text(encoding="utf-8"))
weights = np.asarray(head["coef"], dtype=np.float32)[0]
bias = float(head["intercept"][0])
app = FastAPI(title="Transformer sentiment (plain FastAPI)")


class Review(BaseModel):
    text: str


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "Healthy"}


@app.post("/predictions/transformer_sentiment")
def predict(review: Review) -> dict[str, Any]:
    inputs = tokenizer(review.text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**inputs).last_hidden_state[0]
    embedding = hidden.mean(dim=0)
    embedding = torch.nn.functional.normalize(embedding, dim=0).numpy()
    positive = 1 / (1 + np.exp(-(float(embedding @ weights) + bias)))
    best = int(positive >= 0.5)
    confidence = positive if best else 1 - positive
    return {"label": LABELS[best], "confidence": round(float(confidence), 4)}
