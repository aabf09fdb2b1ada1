"""The first hour: ``POST /predict`` that does not guess between models."""

from __future__ import annotations

from tests.conftest import MakeArchive, StartServer


def test_predict_with_one_model_serves_it(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("zeta")
    server = start_server()
    answer = server.post("/predict", {"text": "hi"})
    assert answer.status_code == 200 and answer.json()["echo"] == {"text": "hi"}


def test_predict_with_several_models_asks_which(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("alpha")
    make_archive("beta")
    server = start_server()
    refused = server.post("/predict", {"text": "hi"})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "alpha, beta" in message and "?model=NAME" in message and "--default-model" in message
    chosen = server.post("/predict", {"text": "hi"}, params={"model": "beta"})
    assert chosen.status_code == 200
    pinned = start_server("--default-model", "beta")
    assert pinned.post("/predict", {"text": "hi"}).status_code == 200
    assert pinned.post("/predict", {"text": "hi"}, params={"model": "ghost"}).status_code == 404
