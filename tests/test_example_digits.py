"""The digits example: training, its artifacts, and the helpers the tensor-handler tests share."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_onnx"


def load_train() -> ModuleType:
    """The example's train.py, loaded by path."""
    spec = importlib.util.spec_from_file_location("digits_onnx_train", EXAMPLE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_digits(out_dir: Path, messages: list[str] | None = None) -> dict[str, Path]:
    sink: list[str] = [] if messages is None else messages
    paths: dict[str, Path] = load_train().train(out_dir, report=sink.append)
    return paths


def holdout_rows(count: int) -> np.ndarray:
    """Digits (raw 0-16 pixel values) to predict, as float32 rows of 64."""
    from sklearn.datasets import load_digits

    features = load_digits().data.astype(np.float32)
    rows: np.ndarray = features[-count:]
    return rows


def png_bytes(row: np.ndarray) -> bytes:
    pixels = np.rint(row.reshape(8, 8) * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded_pixels(body: bytes) -> np.ndarray:
    """What the handler makes of an 8x8 PNG with scale 16/255: the reference input."""
    with Image.open(io.BytesIO(body)) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    row: np.ndarray = (pixels * np.float32(16 / 255)).astype(np.float32).reshape(64)
    return row


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return result


def assert_answer(answer: Any, logits: np.ndarray) -> None:
    """A labelled answer matches the reference logits of one instance."""
    probabilities = softmax(logits)
    best = int(np.argmax(probabilities))
    assert answer["label"] == str(best)
    assert answer["confidence"] == pytest.approx(probabilities[best], abs=1e-5)
    served = [answer["probabilities"][str(digit)] for digit in range(10)]
    assert served == pytest.approx(probabilities.tolist(), abs=1e-5)


def batch_sizes(server: Server, model: str) -> tuple[float, float]:
    """(sum, count) of the model's podium_batch_size histogram."""
    text = server.http.get("/metrics").text
    found = {}
    for kind in ("sum", "count"):
        match = re.search(rf'podium_batch_size_{kind}{{model="{model}"[^}}]*}} (\S+)', text)
        assert match, text
        found[kind] = float(match.group(1))
    return found["sum"], found["count"]


def post_concurrently(server: Server, path: str, bodies: list[Any]) -> list[Any]:
    """POST every body at once (one thread each); the JSON answers, in order."""

    def post(body: Any) -> Any:
        response = server.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def assert_rejected(server: Server, path: str, good: Any, bad: Any, *fragments: str) -> None:
    """``bad`` is answered 400 naming the problem; ``good`` still works right after."""
    if isinstance(bad, bytes):
        response = server.http.post(
            path, content=bad, headers={"Content-Type": "application/octet-stream"}
        )
    else:
        response = server.post(path, bad)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "InvalidInput"
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    assert server.post(path, good).status_code == 200


# ----------------------------------------------------------------------------- the example


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[str]]:
    messages: list[str] = []
    paths = train_digits(tmp_path_factory.mktemp("digits"), messages)
    return paths, messages


def test_training_reports_holdout_accuracy_and_writes_every_artifact(
    trained: tuple[dict[str, Path], list[str]],
) -> None:
    paths, messages = trained
    assert messages[0] == "read 1797 digits (1437 train, 360 holdout)"
    [line] = [m for m in messages if m.startswith("holdout accuracy ")]
    assert float(line.removeprefix("holdout accuracy ")) > 0.9
    for name in ("onnx", "torchscript", "export", "safetensors", "model_class"):
        assert paths[name].stat().st_size > 0, name
    example = json.loads(paths["example"].read_text())
    assert len(example["inputs"]) == 64
    assert all(isinstance(v, int) and 0 <= v <= 16 for v in example["inputs"])
    with Image.open(paths["png"]) as image:
        assert (image.size, image.mode) == ((8, 8), "L")
        pixels = np.asarray(image)
    assert paths["raw"].read_bytes() == pixels.tobytes()
    # The PNG is the example digit, up to rounding 0-16 to 0-255 and back.
    assert np.abs(decoded_pixels(paths["png"].read_bytes()) - example["inputs"]).max() < 0.05


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_agree_with_each_other(trained: tuple[dict[str, Path], list[str]]) -> None:
    import onnxruntime as ort
    import torch

    paths, _ = trained
    rows = holdout_rows(16)
    session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    [onnx_logits] = session.run(["logits"], {"x": rows})
    with torch.inference_mode():
        script = torch.jit.load(str(paths["torchscript"]))  # type: ignore[no-untyped-call]
        scripted = script(torch.from_numpy(rows)).numpy()
        exported = torch.export.load(str(paths["export"])).module()(torch.from_numpy(rows))
    np.testing.assert_allclose(onnx_logits, scripted, atol=1e-4)
    np.testing.assert_allclose(exported.numpy(), scripted, atol=1e-4)


def test_main_trains_into_the_folder_it_is_given(tmp_path: Path) -> None:
    assert load_train().main(["--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.onnx").is_file()
