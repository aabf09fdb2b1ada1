"""KServe V2 over REST against a real ``podium serve``, spoken by ``tritonclient.http`` (a
client nobody here wrote), Podium's own client and CLI, and hostile bodies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

import podium
from podium.archive import Manifest, pack
from podium.cli.example import build as build_nsmc
from tests.conftest import Server, launch
from tests.test_example_digits import holdout_rows, softmax, train_digits
from tests.test_example_nsmc import NEGATIVE, POSITIVE
from tests.test_handlers_onnx import make_multi_input_model, reference_logits

LABELS = [str(digit) for digit in range(10)]
SIGNATURE: dict[str, Any] = {
    "inputs": {"x": {"dtype": "float32", "shape": [None, 64]}},
    "outputs": {"logits": {"dtype": "float32", "shape": [None, 10]}},
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def server(digits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("v2")
    store = folder / "store"
    onnx, script = digits["onnx"], digits["torchscript"]
    options = {"softmax": True, "threads": 1}
    pack(
        Manifest(
            name="digits", handler="onnx", model_file=onnx.name, labels=LABELS, options=options
        ),
        {onnx.name: onnx},
        store,
    )
    pack(
        Manifest(name="digits-raw", handler="onnx", model_file=onnx.name),
        {onnx.name: onnx},
        store,
    )
    pack(
        Manifest(
            name="digits-script",
            handler="torch",
            model_file=script.name,
            labels=LABELS,
            options=options,
            signature=SIGNATURE,
        ),
        {script.name: script},
        store,
    )
    multi = folder / "multi.onnx"
    make_multi_input_model(multi)
    pack(Manifest(name="multi", handler="onnx", model_file=multi.name), {multi.name: multi}, store)
    build_nsmc(store, folder / "nsmc-build", report=lambda _: None)
    iris = folder / "iris.joblib"
    joblib.dump(iris_model(), iris)
    pack(
        Manifest(name="iris", handler="sklearn", model_file=iris.name, labels=IRIS),
        {iris.name: iris},
        store,
    )
    running = launch(folder, "--workers", "1", store=store)
    yield running
    running.stop()


IRIS = ["setosa", "versicolor", "virginica"]


def iris_model() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(features, target)


@pytest.fixture
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    url = server.url.removeprefix("http://")
    connection = triton.InferenceServerClient(url)
    yield connection
    connection.close()


def texts(array: np.ndarray) -> list[str]:
    """BYTES elements as text (tritonclient reads JSON ones as str, binary ones as bytes)."""
    return [e.decode() if isinstance(e, bytes) else e for e in array.tolist()]


def infer_digits(
    client: triton.InferenceServerClient,
    model: str,
    rows: np.ndarray,
    binary_in: bool,
    binary_out: bool,
    outputs: list[str] | None = None,
) -> triton.InferResult:
    tensor = triton.InferInput("x", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary_in)
    wanted = [triton.InferRequestedOutput(name, binary_data=binary_out) for name in outputs or []]
    return client.infer(model, [tensor], outputs=wanted or None, request_id="req-7")


def test_server_and_model_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "podium" and server["version"] == podium.__version__
    assert "binary_tensor_data" in server["extensions"]

    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1.0")
    metadata = client.get_model_metadata("digits")
    assert metadata["name"] == "digits" and metadata["versions"] == ["1.0"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("label", "BYTES", [-1]),
        ("confidence", "FP64", [-1]),
        ("probabilities", "FP64", [-1, 10]),
    ]
    # Without labels the model's own outputs, read from the ONNX file.
    raw = client.get_model_metadata("digits-raw")
    assert raw["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    text = client.get_model_metadata("nsmc_sentiment")
    assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]

    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("no-such-model")
    assert missing.value.status() == "404" and "no-such-model" in str(missing.value.message())
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("model", ["digits", "digits-script"])
@pytest.mark.parametrize(("binary_in", "binary_out"), [(False, False), (True, True), (True, False)])
def test_fp32_digits_answer_as_in_process(
    client: triton.InferenceServerClient,
    digits: dict[str, Path],
    model: str,
    binary_in: bool,
    binary_out: bool,
) -> None:
    rows = holdout_rows(5)
    expected = softmax(reference_logits(digits["onnx"], rows))
    names = ["label", "confidence", "probabilities"]
    result = infer_digits(client, model, rows, binary_in, binary_out, names)
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_name"] == model
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    labels = result.as_numpy("label")
    assert labels is not None
    assert texts(labels) == [str(i) for i in expected.argmax(axis=1)]
    confidence = result.as_numpy("confidence")
    assert confidence is not None
    np.testing.assert_allclose(confidence, expected.max(axis=1), atol=1e-5)


def test_requested_outputs_and_the_raw_model(
    client: triton.InferenceServerClient, digits: dict[str, Path]
) -> None:
    rows = holdout_rows(3)
    only = infer_digits(client, "digits", rows, True, True, ["label"])
    assert [output["name"] for output in only.get_response()["outputs"]] == ["label"]
    assert only.as_numpy("probabilities") is None

    raw = infer_digits(client, "digits-raw", rows, False, True)
    logits = raw.as_numpy("logits")
    assert logits is not None and logits.dtype == np.float32
    np.testing.assert_allclose(logits, reference_logits(digits["onnx"], rows), atol=1e-5)

    with pytest.raises(InferenceServerException) as unknown:
        infer_digits(client, "digits", rows, True, True, ["nope"])
    assert unknown.value.status() == "400" and "nope" in str(unknown.value.message())


@pytest.mark.parametrize("binary", [False, True])
def test_int64_and_bytes_inputs(client: triton.InferenceServerClient, binary: bool) -> None:
    ids = np.array([[1, 2, 3], [10, 20, 2**40]], dtype=np.int64)
    names = np.array(["하나".encode(), b"two"], dtype=np.object_)
    inputs = [triton.InferInput("ids", [2, 3], "INT64"), triton.InferInput("names", [2], "BYTES")]
    inputs[0].set_data_from_numpy(ids, binary_data=binary)
    inputs[1].set_data_from_numpy(names, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("total", "echo")]
    result = client.infer("multi", inputs, outputs=outputs)
    total = result.as_numpy("total")
    assert total is not None and total.dtype == np.int64
    assert total.tolist() == [6, 30 + 2**40]
    echo = result.as_numpy("echo")
    assert echo is not None and texts(echo) == ["하나", "two"]


def test_sklearn_model_answers_fp64_rows(client: triton.InferenceServerClient) -> None:
    from sklearn.datasets import load_iris

    rows = load_iris().data[[0, 60, 120]]
    tensor = triton.InferInput("input", [3, 4], "FP64")
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris", [tensor])
    expected = iris_model().predict_proba(rows)
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    labels = result.as_numpy("label")
    assert labels is not None and texts(labels) == [IRIS[i] for i in expected.argmax(axis=1)]
    metadata = client.get_model_metadata("iris")
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


def nsmc_in_process(texts: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """The NSMC handler's answers, computed here from the same training."""
    from tests.test_example_nsmc import load

    model_dir = tmp_path / "nsmc"
    load("train").train(None, model_dir, report=lambda _: None)
    handler = load("handler").NsmcHandler()
    manifest = Manifest(
        name="nsmc",
        handler="handler.py:NsmcHandler",
        model_file="model.joblib",
        labels=["negative", "positive"],
    )
    handler.initialize(podium.Context("nsmc", "1.0", model_dir, manifest))
    answers: list[dict[str, Any]] = handler.handle([texts], handler.context)[0]
    return answers


@pytest.mark.parametrize("binary", [False, True])
def test_korean_text_on_nsmc(
    client: triton.InferenceServerClient, tmp_path: Path, binary: bool
) -> None:
    reviews = [POSITIVE, NEGATIVE]
    tensor = triton.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in reviews], dtype=np.object_), binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "confidence")]
    result = client.infer("nsmc_sentiment", [tensor], outputs=outputs)
    expected = nsmc_in_process(reviews, tmp_path)
    labels = result.as_numpy("label")
    confidence = result.as_numpy("confidence")
    assert labels is not None and confidence is not None
    assert texts(labels) == [a["label"] for a in expected]
    assert texts(labels) == ["positive", "negative"]
    np.testing.assert_allclose(confidence, [a["confidence"] for a in expected], atol=1e-5)


def test_podium_client_and_cli_speak_v2(server: Server, digits: dict[str, Path]) -> None:
    rows = holdout_rows(2)
    expected = softmax(reference_logits(digits["onnx"], rows))
    with podium.Client(server.url) as client:
        for binary in (True, False):
            answer = client.infer("digits", {"x": rows}, binary=binary)
            np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
            assert answer["label"].tolist() == [str(i) for i in expected.argmax(axis=1)]
        texts = client.infer("nsmc_sentiment", {"text": [POSITIVE]}, outputs=["label"])
        assert list(texts) == ["label"] and texts["label"].tolist() == ["positive"]
        with pytest.raises(podium.ModelNotFound):
            client.infer("missing", {"x": rows})
        with pytest.raises(podium.InvalidRequest, match=r"datatype|shape|64"):
            client.infer("digits", {"x": rows[:, :10]})
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "podium.cli",
            "predict",
            "nsmc_sentiment",
            "--v2",
            "--url",
            server.url,
            "--data",
            json.dumps({"text": [POSITIVE]}),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(printed)["label"] == ["positive"]


def test_the_same_request_answers_the_same_on_both_protocols(server: Server) -> None:
    row = holdout_rows(1)
    native = server.post("/predictions/digits", row.tolist()).json()[0]
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 64], "data": row.ravel().tolist()}
        ]
    }
    v2 = server.post("/v2/models/digits/versions/1.0/infer", body).json()
    outputs = {output["name"]: output for output in v2["outputs"]}
    assert outputs["label"]["data"] == [native["label"]]
    assert outputs["confidence"]["data"] == pytest.approx([native["confidence"]], abs=1e-6)


TRUNCATED = (
    b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], '
    b'"parameters": {"binary_data_size": 256}}]}'
)
MALFORMED: list[tuple[bytes, dict[str, str], str]] = [
    (b"{not json", {}, "JSON"),
    (b"[]", {}, "object"),
    (b"{}", {}, "inputs"),
    (b'{"inputs": []}', {}, "inputs"),
    (b'{"inputs": {"name": "x"}}', {}, "inputs"),
    (b'{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}', {}, "name"),
    (b'{"inputs": [{"name": "x", "datatype": "FP128", "shape": [1], "data": [1]}]}', {}, "FP128"),
    (
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 64], "data": [1]}]}',
        {},
        "shape",
    ),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}', {}, "FP32"),
    (b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}', {}, "INT8"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', {}, "shape"),
    (
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1000000000000, 1000000], '
        b'"data": [1, 2]}]}',
        {},
        "shape",
    ),
    (TRUNCATED + b"\0" * 100, {"inference-header-content-length": str(len(TRUNCATED))}, "binary"),
    (b'{"inputs": []}', {"inference-header-content-length": "999"}, "header"),
    (b'{"inputs": []}', {"inference-header-content-length": "abc"}, "Inference-Header"),
]


def test_malformed_bodies_get_400_and_never_reach_a_worker(server: Server) -> None:
    before = answered(server, "digits")
    for body, headers, fragment in MALFORMED:
        response = server.http.post(
            "/v2/models/digits/infer",
            content=body,
            headers={"content-type": "application/json", **headers},
        )
        assert response.status_code == 400, (body[:80], response.text)
        error = response.json()["error"]
        assert fragment.lower() in error.lower(), (fragment, error)
    # Those requests never reached the data plane; the server still serves.
    assert answered(server, "digits") == before
    assert server.http.get("/v2/health/ready").status_code == 200
    good = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 64}]}
    assert server.post("/v2/models/digits/infer", good).status_code == 200
    assert answered(server, "digits") == before + 1


def answered(server: Server, model: str) -> float:
    """Requests the model's versions answered, from /metrics."""
    total = 0.0
    for line in server.http.get("/metrics").text.splitlines():
        if line.startswith("podium_requests_total{") and f'model="{model}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_routes_methods_and_unknown_models_answer_v2_errors(server: Server) -> None:
    http = server.http
    assert http.get("/v2/models/missing").json() == {"error": "Model 'missing' not found"}
    assert http.post("/v2/models/missing/infer", json={}).status_code == 404
    assert http.get("/v2/models/digits/versions/9.9").status_code == 404
    assert http.get("/v2/models/digits/infer").status_code == 405
    assert http.post("/v2/health/live").status_code == 405
    assert http.get("/v2/nowhere").status_code == 404
    assert http.get("/v2/models/digits/versions/1.0/ready").json()["ready"] is True


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
JSON_VALUES = (
    SCALARS
    | st.lists(SCALARS | st.lists(SCALARS, max_size=3), max_size=4)
    | st.dictionaries(st.text(max_size=8), SCALARS, max_size=4)
)
INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "", "y"]) | JSON_VALUES,
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "FP16", "X"]) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 2**40), max_size=3) | JSON_VALUES,
        "data": st.lists(st.floats() | st.integers() | st.text(max_size=3), max_size=70)
        | JSON_VALUES,
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-5, 300)})
        | JSON_VALUES,
    },
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(INPUTS, max_size=3) | JSON_VALUES,
        "outputs": st.lists(st.fixed_dictionaries({"name": JSON_VALUES}), max_size=2) | JSON_VALUES,
        "parameters": JSON_VALUES,
        "id": JSON_VALUES,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, tail=st.binary(max_size=300), header=st.none() | st.integers(-3, 400))
def test_generated_bodies_never_get_a_5xx(
    server: Server, body: dict[str, Any], tail: bytes, header: int | None
) -> None:
    content = json.dumps(body, allow_nan=True).encode()
    headers = {"content-type": "application/json"}
    if header is not None:
        content += tail
        headers["inference-header-content-length"] = str(header)
    try:
        response = server.http.post("/v2/models/digits/infer", content=content, headers=headers)
    except httpx.TransportError as error:  # pragma: no cover - a crash is the failure
        raise AssertionError(f"connection failed: {error}") from None
    assert response.status_code < 500, response.text
    assert "error" in response.json() or response.status_code == 200


def test_the_v2_routes_are_documented_and_answer_through_fastapi(server: Server) -> None:
    paths = server.http.get("/openapi.json").json()["paths"]
    assert {"/v2", "/v2/models/{model}/versions/{version}/infer"} <= set(paths)
    infer = paths["/v2/models/{model}/infer"]["post"]
    assert [p["name"] for p in infer["parameters"]] == ["model"]

    # The same answers if FastAPI (not the lean endpoint) gets the request.
    from fastapi.testclient import TestClient

    from podium.frontends.rest.app import PodiumApp
    from podium.settings import Settings

    app = PodiumApp(Settings(model_store=server.log.parent / "none", grpc_port=0))
    with TestClient(app.api) as client:
        assert client.get("/v2").json()["name"] == "podium"
        assert client.get("/v2/models/missing").json() == {"error": "Model 'missing' not found"}
        assert client.post("/v2/models/missing/infer", json={}).status_code == 404
