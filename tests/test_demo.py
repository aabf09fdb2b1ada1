"""The demo's model end to end: trained, archived, served, and answering through HTTP
exactly what the handler answers in-process."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from podium import Client, Context
from podium.archive import unpack
from podium.cli.example import EXAMPLE, build, example_dir
from tests.conftest import StartServer


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build(root / "store", root / "build", report=lambda _: None)
    return root / "store"


def reviews(count: int) -> list[str]:
    with (example_dir() / "data" / "sample.tsv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    return [row["document"] for row in rows[:: len(rows) // count]][:count]


def in_process(store: Path, tmp_path: Path, texts: list[str]) -> list[Any]:
    model_dir = tmp_path / "unpacked"
    manifest = unpack(store / f"{EXAMPLE}-1.0.podium", model_dir)
    spec = importlib.util.spec_from_file_location("demo_handler", model_dir / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.NsmcHandler()
    handler.initialize(Context(manifest.name, manifest.version, model_dir, manifest))
    answers: list[Any] = handler.handle(texts, handler.context)
    return answers


def test_served_answers_equal_in_process_answers(
    store: Path, tmp_path: Path, start_server: StartServer
) -> None:
    texts = reviews(40)
    expected = in_process(store, tmp_path, texts)
    server = start_server(store=store)
    with Client(server.url) as client:
        served = [client.predict(EXAMPLE, {"text": text}) for text in texts]
        assert served == expected
        assert client.predict(EXAMPLE, {"text": texts[:5]}) == expected[:5]
        assert client.ping()
    by_default = server.post("/predict", {"text": "정말 재밌게 잘봤습니다!"}).json()
    assert by_default["label"] == "positive"
    listed = server.post(
        "/predict", {"text": ["최악의 영화. 시간 아깝다", "정말 재밌게 잘봤습니다!"]}
    )
    assert [a["label"] for a in listed.json()] == ["negative", "positive"]
    missing = server.post("/predict", {"review": "x"})
    assert missing.status_code == 400
    assert "text" in missing.json()["message"]
