"""The TorchServe migration example: a real ``.mar`` from torch-model-archiver, served unchanged.

Each server test runs twice (``torchserve_env``): without the torchserve package, where
podium's ``ts`` stands in, and with the real package on the server's path.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import importlib.util
import io
import json
import re
import sys
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import torch

from tests.conftest import Server, launch, torch_model_archiver

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "torchserve_migration"
MODEL = "nsmc_ts"
ROUTE = f"/predictions/{MODEL}"
NOVEL = [
    "정말 재밌게 잘봤습니다",
    "최악의 영화. 시간 아깝다",
    "ㅋㅋㅋㅋ",  # no known token: scored through the padding id alone
    "Best movie ever, OST 10점♥",
]
EXPECTED_A_REVIEW = 'expected a review as text, UTF-8 bytes or JSON {"text": "..."}'


def load(name: str, **imports: ModuleType) -> ModuleType:
    """Load one of the example's files by path; ``imports`` answer its own imports."""
    spec = importlib.util.spec_from_file_location(
        f"torchserve_migration_{name}", EXAMPLE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        for imported, value in imports.items():
            patch.setitem(sys.modules, imported, value)
        spec.loader.exec_module(module)
    return module


@dataclass
class Built:
    artifacts: Path
    store: Path
    messages: list[str]
    tokenizer: ModuleType
    model: Any
    vocabulary: dict[str, int]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Train once with the example's own ``main`` and archive the result into a .mar."""
    root = tmp_path_factory.mktemp("torchserve_migration")
    artifacts, store = root / "artifacts", root / "model_store"
    tokenizer = load("tokenizer")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load("train", tokenizer=tokenizer).main(["--out", str(artifacts)])
    store.mkdir()
    extra_files = [
        EXAMPLE / "tokenizer.py",
        artifacts / "vocab.json",
        artifacts / "index_to_name.json",
    ]
    torch_model_archiver(
        *("--model-name", MODEL, "--version", "1.0"),
        *("--serialized-file", str(artifacts / "model.pt")),
        *("--handler", str(EXAMPLE / "handler.py")),
        *("--extra-files", ",".join(map(str, extra_files))),
        *("--config-file", str(EXAMPLE / "model-config.yaml")),
        *("--export-path", str(store)),
    )
    # TorchScript loading is deprecated in this torch; TorchServe's BaseHandler still uses it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(artifacts / "model.pt"))  # type: ignore[no-untyped-call]
    vocabulary = json.loads((artifacts / "vocab.json").read_text(encoding="utf-8"))
    return Built(artifacts, store, printed.getvalue().splitlines(), tokenizer, model, vocabulary)


@pytest.fixture(scope="module")
def server(
    built: Built, torchserve_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One ``podium serve`` of the .mar per torchserve case, shared by the module's tests.

    Batching is TorchServe's fixed rule (model-config.yaml's batchSize 8, maxBatchDelay
    20 ms), so that concurrent requests share batches however fast the worker is."""
    running = launch(
        tmp_path_factory.mktemp("server"),
        "--batching",
        "fixed",
        store=built.store,
        env=torchserve_env,
    )
    yield running
    running.stop()


def reviews(count: int) -> list[str]:
    """``count`` reviews from across the NSMC sample, both labels, then a few it lacks."""
    sample = EXAMPLE.parent / "nsmc_sentiment" / "data" / "sample.tsv"
    with sample.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    spread = [row["document"] for row in rows[:: len(rows) // count]]
    return [*spread[: count - len(NOVEL)], *NOVEL]


def in_process(built: Built, texts: list[str]) -> list[dict[str, Any]]:
    """The answers straight from model.pt and the tokenizer, without handler or server."""
    ids, offsets = built.tokenizer.encode_batch(texts, built.vocabulary)
    with torch.inference_mode():
        logits = built.model(torch.tensor(ids), torch.tensor(offsets))
    confidences, indices = torch.softmax(logits, dim=1).max(dim=1)
    names = ["negative", "positive"]
    return [
        {"label": names[index], "confidence": confidence}
        for index, confidence in zip(indices.tolist(), confidences.tolist(), strict=True)
    ]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` for this model with these labels."""
    labels["model"] = MODEL
    [value] = [
        float(value)
        for found, inside, value in re.findall(r"^(\w+)\{([^}]*)\} (\S+)$", text, re.MULTILINE)
        if found == name and labels.items() <= dict(re.findall(r'(\w+)="([^"]*)"', inside)).items()
    ]
    return value


def batch_sizes(server: Server) -> tuple[float, float, float]:
    """This model's batches so far: how many, the requests in them, how many held <= 8."""
    text = server.http.get("/metrics").text
    return (
        metric(text, "podium_batch_size_count"),
        metric(text, "podium_batch_size_sum"),
        metric(text, "podium_batch_size_bucket", le="8.0"),
    )


def assert_same(served: list[Any], expected: list[dict[str, Any]]) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert set(got) == {"label", "confidence"}
        assert got["label"] == want["label"]
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-6)


def test_training_reports_holdout_accuracy_and_writes_what_torchserve_loads(
    built: Built,
) -> None:
    assert built.messages[0] == "read 400 reviews: 320 to train, 80 held out"
    [line] = [m for m in built.messages if m.startswith("holdout accuracy ")]
    assert float(line.removeprefix("holdout accuracy ")) >= 0.85
    index_to_name = (built.artifacts / "index_to_name.json").read_text(encoding="utf-8")
    assert json.loads(index_to_name) == {"0": "negative", "1": "positive"}
    assert built.vocabulary["<pad>"] == 0
    with zipfile.ZipFile(built.store / f"{MODEL}.mar") as archive:
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        assert set(archive.namelist()) >= {"tokenizer.py", "vocab.json", "index_to_name.json"}
    assert manifest["model"]["serializedFile"] == "model.pt"
    assert manifest["model"]["handler"] == "handler.py"


def test_tokenizer_keeps_every_bag_non_empty(built: Built) -> None:
    encode_batch = built.tokenizer.encode_batch
    vocabulary = {"<pad>": 0, "재밌게": 1, "재밌": 2, "밌게": 3}
    assert built.tokenizer.tokens("재밌게!! 봤다") == ["재밌게", "재밌", "밌게", "봤다"]
    assert encode_batch(["", "재밌게", "ㅋㅋ"], vocabulary) == ([0, 1, 2, 3, 0], [0, 1, 4])
    assert encode_batch([], vocabulary) == ([], [])


def test_handler_is_plain_torchserve() -> None:
    """One class, and imports only from TorchServe's documented API, torch and the stdlib."""
    tree = ast.parse((EXAMPLE / "handler.py").read_text(encoding="utf-8"))
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes == ["SentimentHandler"]
    imported = {
        alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
    allowed = {"json", "os", "torch", "tokenizer", "ts.torch_handler.base_handler", "ts.utils.util"}
    assert imported <= allowed


def test_every_body_shape_gets_the_in_process_answer(built: Built, server: Server) -> None:
    texts = reviews(8)
    expected = in_process(built, texts)
    plain = [
        server.http.post(ROUTE, content=t.encode(), headers={"Content-Type": "text/plain"})
        for t in texts
    ]
    raw_put = [
        server.http.put(
            f"{ROUTE}/1.0", content=t.encode(), headers={"Content-Type": "application/octet-stream"}
        )
        for t in texts
    ]
    as_json = [server.post(ROUTE, {"text": t}) for t in texts]
    json_string = [server.post(ROUTE, t) for t in texts]
    multipart = [
        server.http.post(ROUTE, files={"data": ("review.txt", t.encode(), "text/plain")})
        for t in texts
    ]
    for kind in (plain, raw_put, as_json, json_string, multipart):
        assert [r.status_code for r in kind] == [200] * len(texts), kind[0].text
        assert_same([r.json() for r in kind], expected)


UNUSABLE = [
    (b"", "text/plain", "the review is empty"),
    (b"   ", "text/plain", "the review is empty"),
    (b"\xff\xfe\xfd", "application/octet-stream", "the review is not valid UTF-8"),
    (b'{"review": "good"}', "application/json", EXPECTED_A_REVIEW),
]


def rejection(message: str) -> dict[str, Any]:
    return {"code": 400, "type": "InvalidReview", "message": message}


def test_unusable_bodies_get_a_400_and_serving_goes_on(built: Built, server: Server) -> None:
    for body, content_type, message in UNUSABLE:
        response = server.http.post(ROUTE, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 400, body
        assert response.headers["content-type"].startswith("application/json"), body
        assert response.json() == rejection(message)
    text = NOVEL[0]
    answer = server.http.post(ROUTE, content=text.encode(), headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    assert_same([answer.json()], in_process(built, [text]))


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    built: Built, server: Server
) -> None:
    """24 reviews and the unusable bodies at once: batches of up to 8 mix the two, and a
    rejected request fails alone."""
    texts = reviews(24)
    expected: list[Any] = in_process(built, texts)
    requests = [(text.encode(), "text/plain") for text in texts]
    for position, (body, content_type, message) in enumerate(UNUSABLE):
        requests.insert(position * 7 + 3, (body, content_type))
        expected.insert(position * 7 + 3, rejection(message))

    def ask(request: tuple[bytes, str]) -> httpx.Response:
        body, content_type = request
        return server.http.post(ROUTE, content=body, headers={"Content-Type": content_type})

    before = batch_sizes(server)
    with ThreadPoolExecutor(len(requests)) as pool:
        responses = list(pool.map(ask, requests))
    for response, want in zip(responses, expected, strict=True):
        if "code" in want:
            assert (response.status_code, response.json()) == (400, want)
        else:
            assert response.status_code == 200, response.text
            assert_same([response.json()], [want])
    after = batch_sizes(server)
    batches, requests_batched, up_to_8 = (a - b for a, b in zip(after, before, strict=True))
    assert requests_batched == len(requests)
    assert batches < len(requests)  # some batch held several requests
    assert up_to_8 == batches  # and none more than model-config.yaml's batchSize: 8
