"""The handler contract: lifecycle order, one answer per request, handler discovery, and
the built-in sklearn handler on real model files."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from podium import Context, Handler
from podium.archive import Manifest, pack
from podium.handlers import load_handler
from tests.conftest import MakeArchive, StartServer


def context_for(manifest: Manifest, model_dir: Path) -> Context:
    return Context(manifest.name, manifest.version, model_dir, manifest)


def test_lifecycle_order_through_the_server(
    make_archive: MakeArchive, start_server: StartServer
) -> None:
    make_archive("life", handler="lifecycle.py:LifecycleHandler", version="7")
    server = start_server()
    first = server.post("/predictions/life", {"x": 2}).json()
    assert first["y"] == 20
    assert first["calls"] == ["initialize:life/7", "preprocess", "inference", "postprocess"]
    second = server.post("/predictions/life", {"x": 3}).json()
    # initialize ran once; each batch runs the three stages in order.
    assert second["calls"][1:] == ["preprocess", "inference", "postprocess"] * 2


def test_default_handle_checks_the_batch_contract() -> None:
    class Short(Handler):
        def inference(self, batch: Any) -> Any:
            return batch[:-1]

    manifest = Manifest(name="s", handler="x.py")
    handler = Short()
    handler.initialize(context_for(manifest, Path(".")))
    with pytest.raises(RuntimeError, match="returned 1 responses for 2 requests"):
        handler.handle([1, 2], handler.context)


def test_function_style_handler(make_archive: MakeArchive, start_server: StartServer) -> None:
    make_archive("fn", handler="function_style.py")
    server = start_server()
    assert server.post("/predictions/fn", [1, 2, 3]).json() == {"model": "fn", "length": 3}


def test_handler_discovery_errors(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(
        "from podium import Handler\nclass A(Handler): pass\nclass B(Handler): pass\n"
    )
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ImportError, match="several handlers"):
        load_handler(Manifest(name="t", handler="two.py"), tmp_path)
    with pytest.raises(ImportError, match="no Handler subclass"):
        load_handler(Manifest(name="t", handler="none.py"), tmp_path)
    with pytest.raises(ImportError, match="no Handler subclass named C"):
        load_handler(Manifest(name="t", handler="two.py:C"), tmp_path)
    with pytest.raises(ImportError, match="not in the archive"):
        load_handler(Manifest(name="t", handler="../escape.py"), tmp_path)
    assert type(load_handler(Manifest(name="t", handler="two.py:B"), tmp_path)).__name__ == "B"


@pytest.fixture(scope="module")
def iris_model() -> tuple[LogisticRegression, np.ndarray]:
    features, target = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(features, target), features


@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".skops"])
def test_sklearn_builtin_serves_every_format(
    tmp_path: Path,
    start_server: StartServer,
    iris_model: tuple[LogisticRegression, np.ndarray],
    suffix: str,
) -> None:
    model, features = iris_model
    model_file = tmp_path / f"iris{suffix}"
    if suffix == ".joblib":
        joblib.dump(model, model_file)
    elif suffix == ".pkl":
        model_file.write_bytes(pickle.dumps(model))
    else:
        import skops.io

        skops.io.dump(model, model_file)
    labels = ["setosa", "versicolor", "virginica"]
    manifest = Manifest(name="iris", handler="sklearn", model_file=model_file.name, labels=labels)
    pack(manifest, {model_file.name: model_file}, tmp_path / "store")
    server = start_server()

    rows = features[[0, 60, 120]]
    expected = model.predict_proba(rows)
    single = server.post("/predictions/iris", rows[0].tolist()).json()
    assert single["label"] == labels[int(np.argmax(expected[0]))]
    assert single["confidence"] == pytest.approx(expected[0].max(), abs=1e-5)
    many = server.post("/predictions/iris", {"inputs": rows.tolist()}).json()
    assert [m["label"] for m in many] == [labels[i] for i in np.argmax(expected, axis=1)]
    assert many[2]["probabilities"]["virginica"] == pytest.approx(expected[2][2], abs=1e-5)

    wrong = server.post("/predictions/iris", [1.0, 2.0])
    assert wrong.status_code == 400
    assert "features" in wrong.json()["message"]
    assert server.post("/predictions/iris", {"nothing": 1}).status_code == 400
    assert server.post("/predictions/iris", []).json()["message"] == "empty list of instances"
    assert server.post("/predictions/iris", rows[1].tolist()).status_code == 200
