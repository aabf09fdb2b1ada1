"""KServe V2 over gRPC against a real ``podium serve``, spoken by ``tritonclient.grpc`` (a
client nobody here wrote) and by hand-built messages, hostile ones included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from hypothesis import HealthCheck, given, settings
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

import podium
from podium.archive import Manifest, pack
from podium.cli.example import build as build_nsmc
from podium.protocols.v2.proto.grpc_service_pb2 import (
    ModelInferRequest,
    ModelInferResponse,
    ServerLiveResponse,
)
from tests.conftest import HANDLERS, Server, free_port, launch
from tests.test_example_digits import holdout_rows, softmax, train_digits
from tests.test_example_nsmc import NEGATIVE, POSITIVE
from tests.test_grpc_codec import MALFORMED, infer_requests
from tests.test_handlers_onnx import make_multi_input_model, reference_logits
from tests.test_v2_rest import LABELS, nsmc_in_process

TOKEN = "grpc-inference-token"
METHOD = "/inference.GRPCInferenceService/"


@dataclass
class GrpcServer:
    """A running ``podium serve`` and the address of its gRPC port."""

    http: Server
    address: str

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.address)

    def call(self, method: str, request: bytes, **kwargs: Any) -> bytes:
        """One RPC with a request serialized by hand (any bytes at all)."""
        with grpc.insecure_channel(self.address) as channel:
            answer: bytes = channel.unary_unary(METHOD + method)(request, timeout=30, **kwargs)
            return answer


def start(folder: Path, store: Path, *flags: str) -> GrpcServer:
    port = free_port()
    server = launch(folder, "--grpc-port", str(port), *flags, store=store)
    return GrpcServer(server, f"127.0.0.1:{port}")


def pack_identity(store: Path, name: str = "identity", **options: Any) -> None:
    handler = HANDLERS / "identity.py"
    manifest = Manifest(name=name, handler="identity.py:IdentityHandler", options=options)
    pack(manifest, {"identity.py": handler}, store)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def server(
    digits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GrpcServer]:
    folder = tmp_path_factory.mktemp("grpc")
    store = folder / "store"
    onnx = digits["onnx"]
    options = {"softmax": True, "threads": 1}
    files = {onnx.name: onnx}
    pack(
        Manifest(
            name="digits", handler="onnx", model_file=onnx.name, labels=LABELS, options=options
        ),
        files,
        store,
    )
    pack(Manifest(name="digits-raw", handler="onnx", model_file=onnx.name), files, store)
    multi = folder / "multi.onnx"
    make_multi_input_model(multi)
    pack(Manifest(name="multi", handler="onnx", model_file=multi.name), {multi.name: multi}, store)
    build_nsmc(store, folder / "nsmc-build", report=lambda _: None)
    pack_identity(store)
    running = start(folder, store, "--workers", "1")
    yield running
    running.http.stop()


@pytest.fixture
def client(server: GrpcServer) -> Iterator[triton.InferenceServerClient]:
    connection = server.client()
    yield connection
    connection.close()


def status_of(error: InferenceServerException) -> str:
    return str(error.status())


def fp32_input(rows: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("x", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_server_and_model_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "podium" and metadata["version"] == podium.__version__
    assert "binary_tensor_data" in metadata["extensions"]

    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1.0")
    assert not client.is_model_ready("digits", "9.9")
    assert not client.is_model_ready("no-such-model")
    model = client.get_model_metadata("digits", as_json=True)
    assert (model["name"], model["versions"], model["platform"]) == (
        "digits",
        ["1.0"],
        "onnxruntime_onnx",
    )
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "64"]}]
    assert [output["name"] for output in model["outputs"]] == [
        "label",
        "confidence",
        "probabilities",
    ]
    text = client.get_model_metadata("nsmc_sentiment", as_json=True)
    assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]

    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("no-such-model")
    assert status_of(missing.value) == "StatusCode.NOT_FOUND"
    assert "no-such-model" in str(missing.value.message())


def test_fp32_digits_answer_as_in_process(
    client: triton.InferenceServerClient, digits: dict[str, Path]
) -> None:
    rows = holdout_rows(5)
    expected = softmax(reference_logits(digits["onnx"], rows))
    result = client.infer("digits", [fp32_input(rows)], request_id="req-7")
    response = result.get_response(as_json=True)
    assert (response["id"], response["model_name"], response["model_version"]) == (
        "req-7",
        "digits",
        "1.0",
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    labels = result.as_numpy("label")
    assert labels is not None
    assert [label.decode() for label in labels] == [str(i) for i in expected.argmax(axis=1)]
    confidence = result.as_numpy("confidence")
    assert confidence is not None
    np.testing.assert_allclose(confidence, expected.max(axis=1), atol=1e-5)


def test_requested_outputs_and_the_raw_model(
    client: triton.InferenceServerClient, digits: dict[str, Path]
) -> None:
    rows = holdout_rows(3)
    wanted = [triton.InferRequestedOutput("label")]
    only = client.infer("digits", [fp32_input(rows)], outputs=wanted)
    assert [output["name"] for output in only.get_response(as_json=True)["outputs"]] == ["label"]
    assert only.as_numpy("probabilities") is None

    raw = client.infer("digits-raw", [fp32_input(rows)])
    logits = raw.as_numpy("logits")
    assert logits is not None and logits.dtype == np.float32 and logits.shape == (3, 10)
    np.testing.assert_allclose(logits, reference_logits(digits["onnx"], rows), atol=1e-5)

    with pytest.raises(InferenceServerException) as unknown:
        client.infer("digits", [fp32_input(rows)], outputs=[triton.InferRequestedOutput("nope")])
    assert status_of(unknown.value) == "StatusCode.INVALID_ARGUMENT"
    assert "nope" in str(unknown.value.message())
    with pytest.raises(InferenceServerException) as missing:
        client.infer("no-such-model", [fp32_input(rows)])
    assert status_of(missing.value) == "StatusCode.NOT_FOUND"


def test_int64_and_bytes_inputs(client: triton.InferenceServerClient) -> None:
    ids = np.array([[1, 2, 3], [10, 20, 2**40]], dtype=np.int64)
    names = np.array(["하나".encode(), b"two"], dtype=np.object_)
    inputs = [triton.InferInput("ids", [2, 3], "INT64"), triton.InferInput("names", [2], "BYTES")]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(names)
    result = client.infer("multi", inputs)
    total = result.as_numpy("total")
    assert total is not None and total.dtype == np.int64
    assert total.tolist() == [6, 30 + 2**40]
    echo = result.as_numpy("echo")
    assert echo is not None and [e.decode() for e in echo] == ["하나", "two"]


def test_korean_text_on_nsmc(client: triton.InferenceServerClient, tmp_path: Path) -> None:
    texts = [POSITIVE, NEGATIVE]
    tensor = triton.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    result = client.infer("nsmc_sentiment", [tensor])
    expected = nsmc_in_process(texts, tmp_path)
    labels = result.as_numpy("label")
    confidence = result.as_numpy("confidence")
    assert labels is not None and confidence is not None
    assert [label.decode() for label in labels] == [a["label"] for a in expected]
    assert [label.decode() for label in labels] == ["positive", "negative"]
    np.testing.assert_allclose(confidence, [a["confidence"] for a in expected], atol=1e-5)


def test_typed_contents_answer_as_raw_ones(server: GrpcServer) -> None:
    """tritonclient sends raw contents only: the typed lists, by hand, answer the same."""
    row = holdout_rows(1)
    message = ModelInferRequest(model_name="digits-raw")
    tensor = message.inputs.add(name="x", datatype="FP32", shape=[1, 64])
    tensor.contents.fp32_contents.extend(row.ravel().tolist())
    response = ModelInferResponse.FromString(server.call("ModelInfer", message.SerializeToString()))
    [output] = response.outputs
    assert (output.name, list(output.shape)) == ("logits", [1, 10])
    [raw] = response.raw_output_contents
    with server.client() as client:
        expected = client.infer("digits-raw", [fp32_input(row)]).as_numpy("logits")
    assert expected is not None
    served = np.frombuffer(raw, triton_to_np_dtype(output.datatype))
    assert served.tolist() == expected.ravel().tolist()


def assert_code(code: grpc.StatusCode, server: GrpcServer, method: str, body: bytes) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        server.call(method, body)
    assert refused.value.code() == code, refused.value.details()
    details: str = refused.value.details()
    return details


def test_malformed_requests_are_invalid_arguments(server: GrpcServer) -> None:
    for case, malformed in MALFORMED.items():
        message = ModelInferRequest()
        message.CopyFrom(malformed)
        message.model_name = "identity"
        details = assert_code(
            grpc.StatusCode.INVALID_ARGUMENT, server, "ModelInfer", message.SerializeToString()
        )
        assert details, case
    # Not a protobuf message at all.
    assert_code(grpc.StatusCode.INVALID_ARGUMENT, server, "ModelInfer", b"\xff\xff\xff")
    # Larger than max_body_bytes (10 MiB): refused before it is parsed.
    large = ModelInferRequest(model_name="identity", raw_input_contents=[bytes(11 * 2**20)])
    assert_code(grpc.StatusCode.RESOURCE_EXHAUSTED, server, "ModelInfer", large.SerializeToString())
    with server.client() as client:  # still serving
        assert client.is_server_ready()
        assert client.infer("digits", [fp32_input(holdout_rows(1))]).as_numpy("label") is not None


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=infer_requests(model="identity"))
def test_generated_requests_never_get_an_internal_error(
    server: GrpcServer, message: ModelInferRequest
) -> None:
    """An identity model answers whatever decodes: every request is answered or refused
    as invalid, never with INTERNAL or UNKNOWN, and the server keeps answering."""
    try:
        answer = server.call("ModelInfer", message.SerializeToString())
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        return
    response = ModelInferResponse.FromString(answer)
    assert response.model_name == "identity" and response.id == message.id
    assert len(response.outputs) == len(response.raw_output_contents) >= 1


def test_still_answering_after_the_generated_requests(server: GrpcServer) -> None:
    assert ServerLiveResponse.FromString(server.call("ServerLive", b"")).live
    with server.client() as client:
        assert client.is_server_ready() and client.is_model_ready("identity")
        row = np.arange(6, dtype=np.float32).reshape(2, 3)
        answer = client.infer("identity", [fp32_input(row)]).as_numpy("output0")
        assert answer is not None and answer.tolist() == row.tolist()


def test_the_inference_token_guards_all_but_health(tmp_path: Path) -> None:
    pack_identity(tmp_path / "store")
    running = start(tmp_path, tmp_path / "store", "--inference-token", TOKEN)
    row = np.ones((1, 2), np.float32)
    try:
        with running.client() as client:
            assert client.is_server_live() and client.is_server_ready()
            for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
                with pytest.raises(InferenceServerException) as refused:
                    client.infer("identity", [fp32_input(row)], headers=headers)
                assert status_of(refused.value) == "StatusCode.UNAUTHENTICATED"
                with pytest.raises(InferenceServerException):
                    client.get_model_metadata("identity", headers=headers)
                with pytest.raises(InferenceServerException):
                    client.get_server_metadata(headers=headers)
            granted = {"authorization": f"Bearer {TOKEN}"}
            answer = client.infer("identity", [fp32_input(row)], headers=granted)
            assert answer.as_numpy("output0") is not None
            assert answer.as_numpy("output0").tolist() == row.tolist()
            assert client.get_model_metadata("identity", headers=granted).name == "identity"
            assert client.is_model_ready("identity", headers=granted)
    finally:
        running.http.stop()


def test_cancelled_calls_and_a_drain_answer_every_call(tmp_path: Path) -> None:
    """Calls whose client gave up are dropped before they reach the worker; at SIGTERM the
    call in flight is answered before the server exits 0."""
    journal = tmp_path / "journal"
    pack_identity(tmp_path / "store", "slow", delay=1.0, journal=str(journal))
    running = start(tmp_path, tmp_path / "store", "--drain-timeout", "10")
    row = np.ones((1, 2), np.float32)
    try:
        with running.client() as client:
            for _ in range(3):
                with pytest.raises(InferenceServerException) as late:
                    client.infer("slow", [fp32_input(row)], client_timeout=0.2)
                assert status_of(late.value) == "StatusCode.DEADLINE_EXCEEDED"
            answers: list[Any] = []
            calling = threading.Thread(
                target=lambda: answers.append(client.infer("slow", [fp32_input(row)]))
            )
            batches = len(journal.read_text().splitlines()) if journal.exists() else 0
            calling.start()
            wait_for(lambda: len(journal.read_text().splitlines()) > batches, calling)
            running.http.process.send_signal(signal.SIGTERM)
            calling.join(timeout=30)
            assert running.http.process.wait(timeout=30) == 0
        [answer] = answers
        assert answer.as_numpy("output0").tolist() == row.tolist()
        # The first late call ran; the two that waited behind it were dropped unrun.
        assert journal.read_text().splitlines() == ["1", "1"]
    finally:
        running.http.stop()


def wait_for(condition: Any, thread: threading.Thread, timeout: float = 30) -> None:
    """Until ``condition()`` holds (the readiness signal here is a file the handler writes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and thread.is_alive(), "never happened"
        time.sleep(0.02)


def serve(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> Any:
    (tmp_path / "store").mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "podium.cli",
        "serve",
        "--model-store",
        str(tmp_path / "store"),
    ]
    return subprocess.run(
        [*command, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_a_grpc_port_in_use_is_a_clean_exit(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = serve(
            tmp_path,
            *("--port", str(free_port()), "--management-port", "0"),
            *("--grpc-port", str(port)),
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_grpcio_the_http_apis_are_served_alone(tmp_path: Path) -> None:
    """A grpcio that cannot be imported (as when the extra is not installed) costs the
    gRPC port only, with a warning that says how to get it."""
    fake = tmp_path / "site" / "grpc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n"
    )
    path = os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))
    pack_identity(tmp_path / "store")
    running = launch(
        tmp_path,
        *("--grpc-port", str(free_port())),
        store=tmp_path / "store",
        env={"PYTHONPATH": path},
    )
    try:
        answer = running.post("/predictions/identity", [1, 2])
        assert answer.status_code == 200 and answer.json() == [1, 2]
    finally:
        running.stop()
    assert "pip install podium[grpc]" in running.log.read_text()


def test_serving_without_the_grpc_port_never_imports_grpcio() -> None:
    script = (
        "import sys\n"
        "from podium.cli.serve import serve\n"
        "from podium.frontends.rest.run import grpc_server\n"
        "from podium.settings import Settings\n"
        "assert grpc_server(None, Settings(grpc_port=0)) is None\n"
        "assert 'grpc' not in sys.modules, 'grpc imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
