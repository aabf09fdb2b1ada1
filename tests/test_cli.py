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
    bad_name = CliRunner().invoke(
        main, ["archive", "../x", "--handler", "sklearn", "-o", str(tmp_path)]
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
            env={**os.environ, "COLUMNS": "200"},
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
    assert set(manifest["files"]) == {"encoder/config.json", "encoder/model.safetensors"}


def test_archive_detection_errors(tmp_path: Path) -> None:
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"x")
    result = CliRunner().invoke(
        main, ["archive", "m", "--model", str(unknown), "-o", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "cannot tell the framework of model.bin" in result.output
    neither = CliRunner().invoke(main, ["archive", "m", "-o", str(tmp_path)])
    assert neither.exit_code == 2
    bad_option = CliRunner().invoke(
        main, ["archive", "m", "--handler", "sklearn", "--option", "novalue", "-o", str(tmp_path)]
    )
    assert bad_option.exit_code == 2
    assert "KEY=VALUE" in bad_option.output
