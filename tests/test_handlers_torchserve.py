"""TorchServe handlers and .mar archives, served unchanged by a real ``podium serve``.

The archives are built by the real ``torch-model-archiver`` from handlers written against
TorchServe's documented API (tests/handlers/torchserve), and every test runs twice: with
the ``torchserve`` package absent (Podium's ``ts`` stand-in) and installed.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from tests.conftest import HANDLERS, Server, launch, torch_model_archiver

TS_HANDLERS = HANDLERS / "torchserve"
WEIGHTS = [[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.mar files: BaseHandler over TorchScript and over an eager model, a function, a
    streaming function, a header handler."""
    work = tmp_path_factory.mktemp("mar")
    store = work / "store"
    store.mkdir()
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(WEIGHTS))
        model.bias.fill_(0.25)
    with warnings.catch_warnings():
        # TorchScript is deprecated in torch 2.13, and still what TorchServe users ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(work / "model.pt"))  # type: ignore[no-untyped-call]
    (work / "index_to_name.json").write_text('{"0": "first", "1": "second"}')
    (work / "scale.json").write_text('{"scale": 3}')
    (work / "threshold.yaml").write_text("batchSize: 8\nmaxBatchDelay: 200\n")
    archiver = ("--export-path", str(store), "--version")
    torch_model_archiver(
        "--model-name", "linear", *archiver, "1.0",
        "--serialized-file", str(work / "model.pt"),
        "--handler", str(TS_HANDLERS / "linear_handler.py"),
        "--extra-files", str(work / "index_to_name.json"),
    )  # fmt: skip
    # An eager model: the class in --model-file, its state_dict as the serialized file.
    (work / "net.py").write_text(
        "import torch\n\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(3, 2)\n\n"
        "    def forward(self, x):\n"
        "        return self.layer(x)\n"
    )
    torch.save({"layer." + k: v for k, v in model.state_dict().items()}, work / "net.pth")
    torch_model_archiver(
        "--model-name", "eager", *archiver, "1.0",
        "--model-file", str(work / "net.py"),
        "--serialized-file", str(work / "net.pth"),
        "--handler", str(TS_HANDLERS / "linear_handler.py"),
        "--extra-files", str(work / "index_to_name.json"),
    )  # fmt: skip
    torch_model_archiver(
        "--model-name", "scaler", *archiver, "2.0",
        "--serialized-file", str(work / "scale.json"),
        "--handler", f"{TS_HANDLERS / 'function_handler'}:handle",
    )  # fmt: skip
    (work / "stream.yaml").write_text("batchSize: 4\nmaxBatchDelay: 100\n")
    torch_model_archiver(
        "--model-name", "stream", *archiver, "1.0",
        "--handler", f"{TS_HANDLERS / 'stream_handler'}:handle",
        "--config-file", str(work / "stream.yaml"),
    )  # fmt: skip
    torch_model_archiver(
        "--model-name", "threshold", *archiver, "1.0",
        "--handler", str(TS_HANDLERS / "header_handler.py"),
        "--config-file", str(work / "threshold.yaml"),
    )  # fmt: skip
    return store


@pytest.fixture(scope="module")
def server(
    store: Path, torchserve_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = launch(tmp_path_factory.mktemp("server"), store=store, env=torchserve_env)
    yield running
    running.stop()


def expected(row: list[float]) -> list[float]:
    return [sum(w * x for w, x in zip(ws, row, strict=True)) + 0.25 for ws in WEIGHTS]


def test_base_handler_over_torchscript_answers_json_text_and_form(server: Server) -> None:
    row = [1.0, 2.0, 3.0]
    want = pytest.approx(expected(row))
    answer = server.post("/predictions/linear", row).json()
    assert answer["output"] == want
    assert answer["label"] == "second"  # index_to_name.json, loaded by BaseHandler
    text = server.http.post(
        "/predictions/linear", content=b"1,2,3", headers={"content-type": "text/plain"}
    )
    assert text.json()["output"] == want
    form = server.http.post("/predictions/linear/1.0", files={"data": (None, "4,0,0")})
    assert form.json() == {"output": pytest.approx(expected([4, 0, 0])), "label": "first"}


def test_base_handler_loads_an_eager_model_from_its_state_dict(server: Server) -> None:
    answer = server.post("/predictions/eager", [1.0, 2.0, 3.0]).json()
    assert answer == {"output": pytest.approx(expected([1.0, 2.0, 3.0])), "label": "second"}


def test_function_handler_gets_raw_bytes_and_context(
    server: Server, torchserve_env: dict[str, str]
) -> None:
    answer = server.http.put("/predictions/scaler", content=b"5").json()  # curl -T
    assert answer["result"] == 15.0
    assert answer["model"] == "scaler"
    assert answer["batch"] == 1  # TorchServe's default batch size
    uuid.UUID(answer["request_id"])
    # The real package is used when it is there, the stand-in when it is not.
    assert answer["ts"] == ("0.12.0" if torchserve_env else "0.12.0+podium")


def test_batch_size_one_is_kept_while_requests_share_worker_messages(server: Server) -> None:
    def messages() -> float:
        for line in server.http.get("/metrics").text.splitlines():
            if line.startswith("podium_inference_latency_seconds_count") and "scaler" in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = messages()
    with ThreadPoolExecutor(32) as pool:
        answers = list(
            pool.map(lambda n: server.http.put("/predictions/scaler", content=b"%d" % n), range(96))
        )
    results = [answer.json() for answer in answers]
    assert [r["result"] for r in results] == [3.0 * n for n in range(96)]
    assert all(r["batch"] == 1 for r in results)  # the handler's batch size is kept...
    assert messages() - before < 96  # ...while a backlog travels to the worker together


def test_request_headers_and_response_status_per_request(server: Server) -> None:
    def ask(threshold: str | None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if threshold is not None:
            headers["X-Threshold"] = threshold
        return server.http.post("/predictions/threshold", content=b"5", headers=headers)

    # Eight at once fill one batch (batchSize 8 in the archive's model-config.yaml): each
    # request still gets its own status.
    thresholds = ["3", None, "7", "oops", "1", None, "9", "4"]
    with ThreadPoolExecutor(len(thresholds)) as pool:
        answers = list(pool.map(ask, thresholds))
    for threshold, answer in zip(thresholds, answers, strict=True):
        if threshold in (None, "oops"):
            assert answer.status_code == 400
            assert "X-Threshold must be a number" in answer.json()["error"]
        else:
            assert answer.status_code == 200
            assert answer.json() == {"over": float(threshold) < 5, "threshold": float(threshold)}
            assert answer.headers["x-handled-by"] == "threshold"


def test_query_parameters_and_content_type_set_by_the_handler(server: Server) -> None:
    answer = server.http.post(
        "/predictions/threshold?format=text",
        content=b"5",
        headers={"X-Threshold": "2", "content-type": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain"
    assert answer.text == "over"


def test_a_header_with_a_line_break_is_never_sent(server: Server) -> None:
    answer = server.http.post(
        "/predictions/threshold?inject=1",
        content=b"5",
        headers={"X-Threshold": "2", "content-type": "application/json"},
    )
    assert answer.status_code == 500
    assert "invalid response header" in answer.json()["message"]
    assert "set-cookie" not in answer.headers


def test_prediction_exception_answers_its_code(server: Server) -> None:
    answer = server.http.post(
        "/predictions/threshold",
        content=b"fail",
        headers={"X-Threshold": "2", "content-type": "text/plain"},
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "code": 422,
        "type": "PredictionException",
        "message": "the model refused this batch",
    }


def test_streamed_parts_arrive_while_the_handler_still_runs(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    body = {"parts": 3, "tag": "a", "gate": str(gate)}
    with server.http.stream("POST", "/predictions/stream", json=body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain"
        assert answer.headers["x-stream-tag"] == "a"
        assert "content-length" not in answer.headers  # chunked
        chunks = answer.iter_bytes()
        # The handler waits for the gate after its first part: that part is here already.
        assert next(chunks) == b"a part 0\n"
        gate.touch()
        rest = b"".join(chunks)
    assert rest == b"a part 1\na part 2\na done\n"


def test_streams_batched_together_each_get_their_own_parts(server: Server) -> None:
    def ask(tag: str) -> tuple[int, str, str]:
        answer = server.post("/predictions/stream", {"parts": len(tag), "tag": tag})
        return answer.status_code, answer.headers["x-stream-tag"], answer.text

    tags = ["b", "cc", "ddd", "e", "ffff", "gg"]
    legacy = server.post("/predictions/stream", {"parts": 2, "tag": "old", "legacy": True})
    assert legacy.text == "old part 0\nold part 1\nold done\n"
    with ThreadPoolExecutor(len(tags)) as pool:
        answers = list(pool.map(ask, tags))
    for tag, (status, header, text) in zip(tags, answers, strict=True):
        want = "".join(f"{tag} part {step}\n" for step in range(len(tag))) + f"{tag} done\n"
        assert (status, header, text) == (200, tag, want)
    # No parts: an ordinary answer with its length.
    plain = server.post("/predictions/stream", {"parts": 0, "tag": "h"})
    assert plain.text == "h done\n"
    assert plain.headers["content-length"] == "7"


def test_a_stream_cut_short_is_seen_broken_and_the_server_keeps_serving(server: Server) -> None:
    for broken in ({"parts": 2, "tag": "x", "fail": True}, {"parts": 2, "tag": "y", "exit": True}):
        with server.http.stream("POST", "/predictions/stream", json=broken) as answer:
            assert answer.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                b"".join(answer.iter_bytes())
    # The killed worker is restarted; streams work again.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        again = server.post("/predictions/stream", {"parts": 1, "tag": "z"})
        if again.status_code == 200:
            break
        time.sleep(0.2)
    assert again.text == "z part 0\nz done\n"


def test_bad_input_gets_clear_errors_and_the_server_keeps_serving(server: Server) -> None:
    not_utf8 = server.http.post(
        "/predictions/linear", content=b"\xff\xfe", headers={"content-type": "text/plain"}
    )
    assert not_utf8.status_code == 500
    assert "UnicodeDecodeError" in not_utf8.json()["message"]
    broken_form = server.http.post(
        "/predictions/linear",
        content=b"--xyz\r\nnot a header\r\n",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert broken_form.status_code in (400, 500)
    assert broken_form.json()["message"]
    no_boundary = server.http.post(
        "/predictions/linear", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    assert "boundary" in no_boundary.json()["message"]
    too_big = server.http.post("/predictions/linear", content=b"1" * (11 * 1024 * 1024))
    assert too_big.status_code == 413
    unknown = server.post("/predictions/nothing", [1, 2, 3])
    assert unknown.status_code == 404
    explain = server.post("/explanations/linear", [1.0, 2.0, 3.0])
    assert explain.status_code == 500
    assert "get_insights" in explain.json()["message"]
    assert server.post("/predictions/linear", [1.0, 2.0, 3.0]).json()["label"] == "second"
    assert server.http.get("/ping").json() == {"status": "Healthy"}


def test_custom_handler_metrics_reach_prometheus(server: Server) -> None:
    def metric(model: str, name: str) -> str | None:
        for line in server.http.get("/metrics").text.splitlines():
            labelled = f'model="{model}"' in line and f'name="{name}"' in line
            if line.startswith("podium_handler_metric{") and labelled:
                return line
        return None

    def checks() -> float:
        line = metric("threshold", "ThresholdChecks")
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    # Workers report at most twice a second, after a batch: ask until a report came in.
    before = checks()
    headers = {"X-Threshold": "1", "content-type": "application/json"}
    deadline = time.monotonic() + 10
    while checks() < before + 3 and time.monotonic() < deadline:
        assert server.http.post("/predictions/threshold", content=b"2", headers=headers).is_success
    assert checks() >= before + 3
    # BaseHandler.handle records HandlerTime in milliseconds.
    while metric("linear", "HandlerTime") is None and time.monotonic() < deadline:
        assert server.post("/predictions/linear", [1.0, 2.0, 3.0]).is_success
    line = metric("linear", "HandlerTime")
    assert line is not None and 'unit="ms"' in line


def test_customized_describe_asks_the_handler(server: Server) -> None:
    (described,) = server.management.get("/models/linear", params={"customized": "true"}).json()
    assert described["customizedMetadata"] == {"inputs": 3, "labels": ["first", "second"]}
    (plain,) = server.management.get("/models/linear/1.0").json()
    assert "customizedMetadata" not in plain


def test_management_lists_mar_models_with_their_torchserve_defaults(server: Server) -> None:
    described = server.management.get("/models/scaler").json()[0]
    assert described["modelVersion"] == "2.0"
    assert described["batchSize"] == 1
    threshold = server.management.get("/models/threshold").json()[0]
    assert threshold["batchSize"] == 8
