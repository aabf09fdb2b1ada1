"""The built-in torch handler through a real server: TorchScript, torch.export (.pt2) and
eager models (safetensors or a state_dict) of the digits network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from podium.archive import Manifest, pack
from tests.conftest import Server, StartServer
from tests.test_example_digits import (
    assert_answer,
    assert_rejected,
    batch_sizes,
    decoded_pixels,
    holdout_rows,
    png_bytes,
    post_concurrently,
    train_digits,
)

IMAGE = {"width": 8, "height": 8, "mode": "L", "scale": 16 / 255}
LABELS = [str(digit) for digit in range(10)]
SIGNATURE: dict[str, Any] = {
    "inputs": {"x": {"dtype": "float32", "shape": [None, 64]}},
    "outputs": {"logits": {"dtype": "float32", "shape": [None, 10]}},
}
EAGER = {"model_class": "model.py:DigitsNet", "model_kwargs": {"hidden": 64}}
MODELS = ("digits-script", "digits-export", "digits-eager", "digits-state")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = train_digits(tmp_path_factory.mktemp("digits"))
    import torch
    from safetensors.torch import load_file

    state = paths["safetensors"].with_name("weights.pt")
    torch.save(load_file(str(paths["safetensors"])), state)
    paths["state"] = state
    return paths


def reference_logits(model_file: Path, rows: np.ndarray) -> np.ndarray:
    import torch

    with pytest.warns(DeprecationWarning), torch.inference_mode():
        model = torch.jit.load(str(model_file))  # type: ignore[no-untyped-call]
    with torch.inference_mode():
        logits: np.ndarray = model(torch.from_numpy(rows.astype(np.float32))).numpy()
    return logits


@pytest.fixture
def server(digits: dict[str, Path], tmp_path: Path, start_server: StartServer) -> Server:
    store = tmp_path / "store"
    common: dict[str, Any] = {"image": IMAGE, "softmax": True, "threads": 1}
    batching: dict[str, Any] = {"batch_size": 16, "max_batch_delay": 50, "batching": "fixed"}
    archives: list[tuple[str, Path, dict[str, Any], dict[str, Any]]] = [
        ("digits-script", digits["torchscript"], {"signature": SIGNATURE, **batching}, {}),
        ("digits-export", digits["export"], {}, {}),
        ("digits-eager", digits["safetensors"], {"signature": SIGNATURE}, EAGER),
        ("digits-state", digits["state"], {"signature": SIGNATURE}, EAGER),
        ("digits-nosig", digits["torchscript"], {}, {}),
    ]
    for name, model, fields, options in archives:
        files = {model.name: model}
        if options:
            files["model.py"] = digits["model_class"]
        labels = LABELS if name != "digits-nosig" else None
        manifest = Manifest(
            name=name,
            handler="torch",
            model_file=model.name,
            labels=labels,
            options={**common, **options},
            **fields,
        )
        pack(manifest, files, store)
    return start_server(store=store)


def test_torch_handler_serves_every_saved_form(server: Server, digits: dict[str, Path]) -> None:
    rows = holdout_rows(40)
    expected = reference_logits(digits["torchscript"], rows)
    octets = {"Content-Type": "application/octet-stream"}
    png = png_bytes(rows[4])
    from_png = reference_logits(digits["torchscript"], decoded_pixels(png)[np.newaxis])[0]
    raw = np.rint(rows[4] * 255 / 16).astype(np.uint8).tobytes()
    for model in MODELS:
        path = f"/predictions/{model}"
        assert_answer(server.post(path, rows[0].tolist()).json(), expected[0])
        assert_answer(server.post(path, {"x": rows[1].tolist()}).json(), expected[1])
        many = server.post(path, {"inputs": rows[:5].tolist()}).json()
        for answer, logits in zip(many, expected[:5], strict=True):
            assert_answer(answer, logits)
        assert_answer(server.http.post(path, content=png, headers=octets).json(), from_png)
        assert_answer(server.http.post(path, content=raw, headers=octets).json(), from_png)

    # Concurrent requests form batches (one forward call each) and still match.
    before = batch_sizes(server, "digits-script")
    answers = post_concurrently(
        server, "/predictions/digits-script", [row.tolist() for row in rows[8:40]]
    )
    for answer, logits in zip(answers, expected[8:40], strict=True):
        assert_answer(answer, logits)
    after = batch_sizes(server, "digits-script")
    requests, batches = after[0] - before[0], after[1] - before[1]
    assert requests == 32 and batches < requests, (requests, batches)

    # No signature and no labels: the request is a batch, the answer the raw outputs.
    plain = server.post("/predictions/digits-nosig", rows[:2].tolist()).json()
    assert plain[1]["outputs"]["output"] == pytest.approx(expected[1].tolist(), abs=1e-4)


def test_torch_handler_rejects_bad_input_and_keeps_serving(server: Server) -> None:
    good = holdout_rows(1)[0].tolist()
    cases: list[tuple[Any, tuple[str, ...]]] = [
        ([1.0] * 10, ('input "x": expected shape (*, 64), got (1, 10)',)),
        (["a"] * 64, ('input "x": expected a number array, got string',)),
        ({"pixels": good}, ('missing field "inputs"',)),
        ([], ("empty list",)),
        (b"garbage", ("neither an image",)),
    ]
    for model in MODELS:
        for bad, fragments in cases:
            assert_rejected(server, f"/predictions/{model}", good, bad, *fragments)
    # Without a signature the model itself rejects a wrong shape, still as a 400.
    assert_rejected(
        server, "/predictions/digits-nosig", [good], [[1.0] * 10], "the model rejected the input"
    )
