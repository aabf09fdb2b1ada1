"""The NSMC model served the simple way people start: one FastAPI app, one sync endpoint.

    NSMC_MODEL=path/to/model.joblib uvicorn bench.fastapi_app:app --loop uvloop \
        --http httptools --no-access-log

A pydantic body model, a plain ``def`` endpoint (FastAPI runs it in its thread pool) and
one ``predict_proba`` call per request: no batching, no worker processes. The text is
cleaned with the example handler's own ``clean_text`` so both servers see the same input.
``bench/nsmc.py`` starts it as the baseline podium is compared against.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

from podium.cli.example import example_dir

LABELS = ("negative", "positive")


def _load_clean_text() -> Callable[[str], str]:
    """``clean_text`` from the example's handler.py, loaded by path."""
    path = Path(example_dir()) / "handler.py"
    spec = importlib.util.spec_from_file_location("nsmc_handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[str], str], module.clean_text)


clean_text = _load_clean_text()
pipeline: Any = joblib.load(os.environ["NSMC_MODEL"])
app = FastAPI(title="NSMC sentiment (plain FastAPI)")


class Review(BaseModel):
    text: str


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "Healthy"}


@app.post("/predictions/nsmc_sentiment")
def predict(review: Review) -> dict[str, Any]:
    probabilities = pipeline.predict_proba([clean_text(review.text)])[0]
    best = int(probabilities.argmax())
    label = LABELS[int(pipeline.classes_[best])]
    return {"label": label, "confidence": round(float(probabilities[best]), 4)}
