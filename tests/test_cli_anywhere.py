"""The client commands find a server through its own settings (podium.toml, ``PODIUM_*``,
flags), send its tokens, and fail in one line."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from podium.archive import Manifest, pack
from podium.cli import main
from tests.conftest import HANDLERS, Server, free_port

INFERENCE_TOKEN = "inference-sesame"


@dataclass
class Configured:
    """A server started in ``folder``, configured by ``folder/podium.toml`` alone."""

    server: Server
    folder: Path
    port: int
    management_port: int

    @property
    def config(self) -> Path:
        return self.folder / "podium.toml"


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PODIUM_")}


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Configured]:
    """The server writes its generated management token to ``secrets/token`` (a relative
    ``token_file`` in its podium.toml); its inference token is given, and also left in
    ``secrets/token.inference``, where a server beyond loopback writes a generated one."""
    folder = tmp_path_factory.mktemp("configured")
    manifest = Manifest(name="echo", handler="echo.py:EchoHandler")
    pack(manifest, {"echo.py": HANDLERS / "echo.py"}, folder / "store")
    port, management_port = free_port(), free_port()
    (folder / "podium.toml").write_text(
        f'model_store = "store"\nport = {port}\nmanagement_port = {management_port}\n'
        f'grpc_port = 0\ntoken_file = "secrets/token"\ninference_token = "{INFERENCE_TOKEN}"\n'
    )
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "serve"],
            cwd=folder,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
    server = Server(process, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{management_port}")
    try:
        server.wait_ready()
        # The inference token stays where a generated one would be; the settings no longer
        # name it, so commands must find the file.
        (folder / "secrets" / "token.inference").write_text(INFERENCE_TOKEN + "\n")
        (folder / "podium.toml").write_text(
            f'model_store = "store"\nport = {port}\nmanagement_port = {management_port}\n'
            'grpc_port = 0\ntoken_file = "secrets/token"\n'
        )
        yield Configured(server, folder, port, management_port)
    finally:
        server.stop()


def podium(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``podium`` command, in ``cwd``, with no PODIUM_* variables but ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args],
        cwd=cwd,
        env={**clean_environment(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_commands_find_the_server_beside_its_podium_toml(configured: Configured) -> None:
    listed = podium("models", cwd=configured.folder)
    assert listed.returncode == 0, listed.stderr
    assert orjson.loads(listed.stdout) == {
        "models": [{"modelName": "echo", "modelUrl": "echo/1.0"}]
    }
    answered = podium("predict", "echo", "--data", '{"a": 1}', cwd=configured.folder)
    assert answered.returncode == 0, answered.stderr
    assert orjson.loads(answered.stdout)["echo"] == {"a": 1}


def test_commands_find_the_server_through_config_in_another_folder(
    configured: Configured, tmp_path: Path
) -> None:
    listed = podium("models", "--config", str(configured.config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert orjson.loads(listed.stdout)["models"][0]["modelName"] == "echo"
    by_variable = {"PODIUM_CONFIG": str(configured.config)}
    answered = podium("predict", "echo", "--data", "[1]", cwd=tmp_path, env=by_variable)
    assert answered.returncode == 0, answered.stderr
    scaled = podium("scale", "echo", "--min-workers", "1", cwd=tmp_path, env=by_variable)
    assert scaled.returncode == 0, scaled.stderr
    assert "Scaled echo/1.0" in orjson.loads(scaled.stdout)["status"]


def test_commands_find_the_server_through_podium_variables(
    configured: Configured, tmp_path: Path
) -> None:
    secrets = configured.folder / "secrets"
    settings = {
        "PODIUM_PORT": str(configured.port),
        "PODIUM_MANAGEMENT_PORT": str(configured.management_port),
        # Relative to the current folder, as any path given by variable or flag.
        "PODIUM_TOKEN_FILE": os.path.relpath(secrets / "token", tmp_path),
    }
    assert podium("models", cwd=tmp_path, env=settings).returncode == 0
    answered = podium("predict", "echo", "--data", "[1]", cwd=tmp_path, env=settings)
    assert answered.returncode == 0, answered.stderr
    management_token = (secrets / "token").read_text().strip()
    explicit = {
        "PODIUM_MANAGEMENT_URL": configured.server.management_url,
        "PODIUM_MANAGEMENT_TOKEN": management_token,
        "PODIUM_URL": configured.server.url,
        "PODIUM_TOKEN": INFERENCE_TOKEN,
    }
    assert podium("models", "echo", cwd=tmp_path, env=explicit).returncode == 0
    assert podium("predict", "echo", "--data", "1", cwd=tmp_path, env=explicit).returncode == 0


def test_predict_sends_the_token_or_is_refused(
    configured: Configured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no podium.toml, no token file here
    for name in clean_environment().keys() ^ os.environ.keys():
        monkeypatch.delenv(name)
    url = ["--url", configured.server.url]
    token = ["--token", INFERENCE_TOKEN]
    given = CliRunner().invoke(main, ["predict", "echo", "--data", "1", *url, *token])
    assert given.exit_code == 0, given.output
    assert orjson.loads(given.stdout)["echo"] == 1
    refused = CliRunner().invoke(main, ["predict", "echo", "--data", "1", *url])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error 401 Unauthorized: ")
    assert refused.stderr.count("\n") == 1
    wrong = CliRunner().invoke(main, ["predict", "echo", "--data", "1", *url, "--token", "nope"])
    assert wrong.exit_code == 1


def test_a_closed_port_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    expected = f"error: cannot reach {url}: connection refused\n"
    closed = podium("predict", "echo", "--data", "1", "--url", url, cwd=tmp_path)
    assert (closed.returncode, closed.stdout, closed.stderr) == (1, "", expected)
    by_setting = podium(
        "predict", "echo", "--data", "1", cwd=tmp_path, env={"PODIUM_PORT": str(port)}
    )
    assert (by_setting.returncode, by_setting.stderr) == (1, expected)
    managed = podium("models", "--url", url, "--token", "t", cwd=tmp_path)
    assert (managed.returncode, managed.stderr) == (1, expected)
    debugged = podium("predict", "echo", "--data", "1", "--url", url, "--debug", cwd=tmp_path)
    assert debugged.returncode == 1
    assert "Traceback" in debugged.stderr and "ServerUnreachable" in debugged.stderr


def test_a_missing_management_token_is_one_line(tmp_path: Path) -> None:
    missing = podium("models", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no management token" in missing.stderr and "podium-token" in missing.stderr
    assert "Traceback" not in missing.stderr
    broken = tmp_path / "podium.toml"
    broken.write_text("port = 'eighty'\n")
    refused = podium("predict", "echo", "--data", "1", cwd=tmp_path)
    assert refused.returncode == 1
    assert "port" in refused.stderr and "Traceback" not in refused.stderr


def test_scale_below_min_is_one_line(configured: Configured) -> None:
    refused = podium(
        "scale", "echo", "--min-workers", "3", "--max-workers", "1", cwd=configured.folder
    )
    assert refused.returncode == 1
    assert refused.stderr == "error 400 InvalidRequest: max_worker 1 is below min_worker 3\n"


def test_models_is_a_table_on_a_terminal_and_json_otherwise(configured: Configured) -> None:
    piped = podium("models", "echo", cwd=configured.folder)
    assert orjson.loads(piped.stdout)[0]["modelVersion"] == "1.0"
    table = on_terminal(["models"], configured.folder)
    assert "model" in table and "echo" in table and "1.0" in table and "ready" in table.lower()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(table)
    as_json = on_terminal(["models", "--json"], configured.folder)
    assert orjson.loads(as_json)["models"][0]["modelName"] == "echo"


def on_terminal(args: list[str], cwd: Path) -> str:
    """What ``podium ARGS`` prints with its stdout on a terminal (a pseudo-terminal)."""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "podium.cli", *args],
            cwd=cwd,
            env={**clean_environment(), "COLUMNS": "160", "NO_COLOR": "1"},
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        os.close(secondary)
        secondary = -1
        printed = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            printed += chunk
        return printed.decode().replace("\r\n", "\n")
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)


def test_serve_reads_a_podium_toml_elsewhere_and_the_commands_follow(tmp_path: Path) -> None:
    """``podium serve --config`` in another folder: paths in podium.toml are relative to it,
    the generated management token lands beside it, and ``--config`` finds it again."""
    folder = tmp_path / "site"
    manifest = Manifest(name="echo", handler="echo.py:EchoHandler")
    pack(manifest, {"echo.py": HANDLERS / "echo.py"}, folder / "store")
    port, management_port = free_port(), free_port()
    config = folder / "podium.toml"
    config.write_text(
        f'model_store = "store"\nport = {port}\nmanagement_port = {management_port}\n'
        "grpc_port = 0\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "serve", "--config", str(config)],
            cwd=elsewhere,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
    server = Server(process, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{management_port}")
    try:
        server.wait_ready()
        assert (folder / "podium-token").is_file()
        assert not (elsewhere / "podium-token").exists()
        listed = podium("models", "--config", str(config), "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["models"][0]["modelName"] == "echo"
    finally:
        server.stop()
