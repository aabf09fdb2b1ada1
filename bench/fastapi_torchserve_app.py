"""The TorchServe-migration model served the simple way: FastAPI, one model call per request.

    TORCHSERVE_ARTIFACTS=path/to/artifacts uvicorn bench.fastapi_torchserve_app:app \
        --loop uvloop --http httptools --no-access-log

``TORCHSERVE_ARTIFACTS`` is the folder ``examples/torchserve_migration/train.py --out`` wrote
(``model.pt``, ``vocab.json``, ``index_to_name.json``). A plain ``def`` endpoint (FastAPI
runs it in its thread pool) takes the review as a ``text/plain`` body and, per request,
tokenizes it with the example's own ``tokenizer.py``, runs the TorchScript model and
applies a softmax: no batching, no worker processes, one torch thread (as the servers it is
compared with get one core). ``bench/torchserve.py`` starts it as the baseline.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import torch
from fastapi import Body, FastAPI

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "torchserve_migration"
ARTIFACTS = Path(os.environ["TORCHSERVE_ARTIFACTS"])


def _load_tokenizer() -> ModuleType:
    """``tokenizer.py`` from the example, loaded by path."""
    path = EXAMPLE / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("torchserve_migration_tokenizer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
tokenizer = _load_tokenizer()
model = torch.jit.load(str(ARTIFACTS / "model.pt")).eval()
vocabulary: dict[str, int] = json.loads((ARTIFACTS / "vocab.json").read_text(encoding="utf-8"))
labels: dict[str, str] = json.loads((ARTIFACTS / "index_to_name.json").read_text(encoding="utf-8"))
app = FastAPI(title="NSMC sentiment, TorchScript (plain FastAPI)")


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "Healthy"}


@app.post("/predictions/nsmc_ts")
def predict(review: Annotated[str, Body(media_type="text/plain")]) -> dict[str, Any]:
    ids, offsets = tokenizer.encode_batch([review], vocabulary)
    with torch.inference_mode():
        logits = model(torch.tensor(ids), torch.tensor(offsets))
    probabilities = torch.softmax(logits, dim=1)[0].tolist()
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {"label": labels[str(best)], "confidence": probabilities[best]}
