"""The built-in onnx handler through a real server: the digits model (JSON, PNG, raw bytes,
.npy, concurrent batches, every kind of bad input) and a multi-input int/string model."""

from __future__ import annotations

import io
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


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_digits(tmp_path_factory.mktemp("digits"))


def make_multi_input_model(path: Path) -> None:
    """ids (int64, [batch, 3]) and names (string, [batch]) → total (sum of ids), echo."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["ids", "axes"], ["total"], keepdims=0),
            helper.make_node("Identity", ["names"], ["echo"]),
        ],
        "multi",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3]),
            helper.make_tensor_value_info("names", TensorProto.STRING, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch"]),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def reference_logits(model_file: Path, rows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    [logits] = session.run(["logits"], {"x": rows.astype(np.float32)})
    result: np.ndarray = logits
    return result


@pytest.fixture
def server(digits: dict[str, Path], tmp_path: Path, start_server: StartServer) -> Server:
    store = tmp_path / "store"
    model = digits["onnx"]
    options: dict[str, Any] = {"image": IMAGE, "softmax": True, "threads": 1, "max_elements": 5000}
    pack(
        Manifest(
            name="digits",
            handler="onnx",
            model_file=model.name,
            labels=LABELS,
            options=options,
            batch_size=16,
            max_batch_delay=50,
            batching="fixed",
        ),
        {model.name: model},
        store,
    )
    pack(
        Manifest(name="digits-raw", handler="onnx", model_file=model.name),
        {model.name: model},
        store,
    )
    multi = tmp_path / "multi.onnx"
    make_multi_input_model(multi)
    pack(Manifest(name="multi", handler="onnx", model_file=multi.name), {multi.name: multi}, store)
    return start_server(store=store)


def test_onnx_handler_serves_the_digits_model(server: Server, digits: dict[str, Path]) -> None:
    rows = holdout_rows(40)
    expected = reference_logits(digits["onnx"], rows)
    path = "/predictions/digits"

    # One instance, bare or wrapped or by input name: one answer.
    assert_answer(server.post(path, rows[0].tolist()).json(), expected[0])
    assert_answer(server.post(path, {"inputs": rows[1].tolist()}).json(), expected[1])
    assert_answer(server.post(path, {"x": rows[2].tolist()}).json(), expected[2])
    # Integers are fine for a float input.
    assert_answer(server.post(path, rows[3].astype(int).tolist()).json(), expected[3])
    # A list of instances: a list of answers, in order.
    many = server.post(path, {"inputs": rows[:5].tolist()}).json()
    assert len(many) == 5
    for answer, logits in zip(many, expected[:5], strict=True):
        assert_answer(answer, logits)
    assert len(server.post(path, [rows[0].tolist()]).json()) == 1

    # Binary bodies: a PNG, the same pixels raw, and a .npy array.
    octets = {"Content-Type": "application/octet-stream"}
    png = png_bytes(rows[4])
    from_png = reference_logits(digits["onnx"], decoded_pixels(png)[np.newaxis])[0]
    assert_answer(server.http.post(path, content=png, headers=octets).json(), from_png)
    raw = np.rint(rows[4] * 255 / 16).astype(np.uint8).tobytes()
    assert_answer(server.http.post(path, content=raw, headers=octets).json(), from_png)
    buffer = io.BytesIO()
    np.save(buffer, rows[5:7])
    answers = server.http.post(path, content=buffer.getvalue(), headers=octets).json()
    assert_answer(answers[1], expected[6])

    # Concurrent requests are batched (one session.run per batch) and still match.
    before = batch_sizes(server, "digits")
    answers = post_concurrently(server, path, [row.tolist() for row in rows[8:40]])
    for answer, logits in zip(answers, expected[8:40], strict=True):
        assert_answer(answer, logits)
    after = batch_sizes(server, "digits")
    requests, batches = after[0] - before[0], after[1] - before[1]
    assert requests == 32 and batches < requests, (requests, batches)

    # Without labels, the raw outputs by name.
    plain = server.post("/predictions/digits-raw", rows[:2].tolist()).json()
    assert plain[0]["outputs"]["logits"] == pytest.approx(expected[0].tolist(), abs=1e-4)


def test_onnx_handler_rejects_bad_input_and_keeps_serving(server: Server) -> None:
    path = "/predictions/digits"
    good = holdout_rows(1)[0].tolist()
    cases: list[tuple[Any, tuple[str, ...]]] = [
        ([1.0] * 10, ('input "x": expected shape (*, 64), got (1, 10)',)),
        ([[1.0] * 64, [1.0] * 63], ('input "x"', "not a rectangular array")),
        ([[[1.0] * 64]], ("expected shape (*, 64) for a list of instances or (64) for one",)),
        (["a"] * 64, ('input "x": expected a number array, got string',)),
        ({"inputs": [None] * 64}, ('input "x": expected a number array',)),
        ({"pixels": good}, ('missing field "inputs"', '"x"')),
        ({"inputs": {"y": good}}, ('missing input "x"',)),
        ({"inputs": {"x": good, "y": good}}, ('unknown input "y"',)),
        ([], ('input "x": empty list',)),
        ({"inputs": []}, ("empty list",)),
        ("seven", ("expected a number array, got string",)),
        ([good] * 100, ("6400 values, more than the limit of 5000",)),
        (b"not an image at all", ("neither an image", "64 raw pixel bytes")),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ("image",)),
        (b"\x93NUMPY garbage", (".npy",)),
    ]
    for bad, fragments in cases:
        assert_rejected(server, path, good, bad, *fragments)
    # A bad request batched with good ones fails alone.
    bodies: list[Any] = [good] * 6 + [[1.0] * 3] + [good] * 6
    responses = post_statuses(server, path, bodies)
    assert responses == [200] * 6 + [400] + [200] * 6
    # The model without the image option says how to send binary bodies.
    assert_rejected(server, "/predictions/digits-raw", good, b"\x89PNG...", 'option "image"')


def post_statuses(server: Server, path: str, bodies: list[Any]) -> list[int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda body: server.post(path, body).status_code, bodies))


def test_onnx_handler_takes_several_inputs_of_int_and_string(server: Server) -> None:
    path = "/predictions/multi"
    one = server.post(path, {"inputs": {"ids": [1, 2, 3], "names": "a"}}).json()
    assert one == {"outputs": {"total": 6, "echo": "a"}}
    many = server.post(path, {"ids": [[1, 2, 3], [4, 5, 6.0]], "names": ["a", "b"]}).json()
    assert many == [
        {"outputs": {"total": 6, "echo": "a"}},
        {"outputs": {"total": 15, "echo": "b"}},
    ]
    good = {"inputs": {"ids": [1, 2, 3], "names": "a"}}
    cases: list[tuple[Any, tuple[str, ...]]] = [
        ([1, 2, 3], ('this model has 2 inputs: send {"ids": ..., "names": ...}',)),
        ({"inputs": {"ids": [1, 2, 3]}}, ('missing input "names"',)),
        ({"ids": [1.5, 2, 3], "names": "a"}, ('input "ids": expected integers (int64)',)),
        ({"ids": [1, 2, 3], "names": 5}, ('input "names": expected a string array, got number',)),
        ({"ids": [[1, 2, 3]] * 2, "names": ["a"]}, ("inputs disagree on the number",)),
        ({"ids": [1, 2, 3, 4], "names": "a"}, ('input "ids": expected shape (*, 3), got (1, 4)',)),
        ({"ids": [2**70, 1, 1], "names": "a"}, ('input "ids"',)),
    ]
    for bad, fragments in cases:
        assert_rejected(server, path, good, bad, *fragments)
