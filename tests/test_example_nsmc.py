"""The NSMC sentiment example: training on the bundled sample, and its handler's contract."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import podium
from podium.archive import Manifest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nsmc_sentiment"
POSITIVE = "정말 재밌게 잘봤습니다!"
NEGATIVE = "최악의 영화. 시간 아깝다"


def load(name: str) -> ModuleType:
    """Load one of the example's files by path, the way a worker loads handler.py."""
    spec = importlib.util.spec_from_file_location(f"nsmc_example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Trained:
    handler_module: ModuleType
    model_dir: Path
    messages: list[str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    model_dir = tmp_path_factory.mktemp("nsmc")
    messages: list[str] = []
    model_path = load("train").train(None, model_dir, report=messages.append)
    assert model_path == model_dir / "model.joblib"
    return Trained(load("handler"), model_dir, messages)


@pytest.fixture
def handler(trained: Trained) -> podium.Handler:
    manifest = Manifest(
        name="nsmc-sentiment",
        handler="handler.py:NsmcHandler",
        model_file="model.joblib",
        labels=["negative", "positive"],
    )
    context = podium.Context(
        model_name="nsmc-sentiment",
        model_version="1.0",
        model_dir=trained.model_dir,
        manifest=manifest,
    )
    instance: podium.Handler = trained.handler_module.NsmcHandler()
    instance.initialize(context)
    return instance


def handle(handler: podium.Handler, requests: list[Any]) -> list[Any]:
    return handler.handle(requests, handler.context)


def test_training_reports_holdout_accuracy(trained: Trained) -> None:
    assert trained.messages[0] == "read 400 reviews"
    [line] = [m for m in trained.messages if m.startswith("holdout accuracy ")]
    assert float(line.removeprefix("holdout accuracy ")) >= 0.85
    assert (trained.model_dir / "example.json").read_text(encoding="utf-8").strip() == (
        '{"text": "정말 재밌게 잘봤습니다!"}'
    )


def test_clean_text(trained: Trained) -> None:
    clean_text = trained.handler_module.clean_text
    assert clean_text("  최악의 영화...시간   아깝다ㅡㅡ!! ") == "최악의 영화 시간 아깝다ㅡㅡ"
    assert clean_text("OST 10점♥ ㅋㅋ^^") == "OST 10점 ㅋㅋ"


def test_labels_through_handle(handler: podium.Handler) -> None:
    positive, negative = handle(handler, [POSITIVE, NEGATIVE])
    assert positive["label"] == "positive"
    assert negative["label"] == "negative"
    for answer in (positive, negative):
        assert set(answer) == {"label", "confidence"}
        assert 0.5 <= answer["confidence"] <= 1.0
        assert answer["confidence"] == round(answer["confidence"], 4)


def test_batch_mixes_shapes(handler: podium.Handler) -> None:
    requests: list[Any] = [
        POSITIVE,
        [NEGATIVE, POSITIVE, "배우들 연기가 너무 어색하다"],
        {"text": NEGATIVE},
    ]
    responses = handle(handler, requests)
    assert len(responses) == 3
    single, several, wrapped = responses
    assert single["label"] == "positive"
    assert [a["label"] for a in several] == ["negative", "positive", "negative"]
    assert wrapped == several[0]
    assert handle(handler, [{"text": [POSITIVE]}, POSITIVE.encode()]) == [[single], single]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"review": POSITIVE}, 'missing field "text"'),
        ({"text": 3}, '"text" must be a string or a list of strings'),
        ({"text": [POSITIVE, None]}, '"text" must be a string or a list of strings'),
        ([POSITIVE, 3], '"text" must be a string or a list of strings'),
        ([], '"text" is an empty list'),
        ({"text": []}, '"text" is an empty list'),
        ("   ", "a review is empty or blank"),
        (["좋아요", ""], "a review is empty or blank"),
        (b"", "a review is empty or blank"),
        (b"\xff\xfe", "body is not valid UTF-8"),
        (42, 'expected a string, a list of strings or an object with "text", got int'),
        (None, "got NoneType"),
    ],
)
def test_malformed_input_is_rejected(
    handler: podium.Handler, request_body: Any, message: str
) -> None:
    with pytest.raises(podium.InvalidInput) as caught:
        handle(handler, [POSITIVE, request_body])
    assert message in caught.value.message


def test_default_labels(trained: Trained) -> None:
    manifest = Manifest(name="nsmc", handler="handler.py", model_file="model.joblib")
    context = podium.Context("nsmc", "1.0", trained.model_dir, manifest)
    instance: podium.Handler = trained.handler_module.NsmcHandler()
    instance.initialize(context)
    [answers] = instance.handle([[POSITIVE, NEGATIVE]], context)
    assert [answer["label"] for answer in answers] == ["positive", "negative"]


def test_training_skips_unusable_rows(trained: Trained, tmp_path: Path) -> None:
    rows = [f'{i}\t"{text}" 진짜 {i}\t{i % 2}' for i, text in enumerate([NEGATIVE, POSITIVE] * 5)]
    rows += ["97\t\t1", "98\t...\t0", "99\t좋아요\tNaN"]
    data = tmp_path / "ratings.txt"
    data.write_text("id\tdocument\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    messages: list[str] = []
    load("train").train(data, tmp_path / "out", report=messages.append)
    assert messages[0] == "read 10 reviews (skipped 3)"
