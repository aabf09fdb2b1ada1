"""``podium serve --ts-config``: TorchServe's config.properties read into settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.compat.torchserve.config import read_properties, read_settings
from podium.errors import ConfigError
from podium.settings import Settings
from tests.conftest import HANDLERS, free_port, launch, torch_model_archiver

PROPERTIES = r"""# TorchServe configuration
! an old-style comment
inference_address=http://127.0.0.1:8085
management_address = http://127.0.0.1:8091
metrics_address: http://127.0.0.1:8082
number_of_netty_threads 4
model_store=/srv/models
load_models=all
default_workers_per_model=2
job_queue_size=50
max_request_size=1048576
max_response_size=2097152
default_response_timeout=12
install_py_dep_per_model=true
models={\
  "scaler": {\
    "1.0": {"batchSize": 8, "maxBatchDelay": 5, "minWorkers": 1, "maxWorkers": 2,\
            "responseTimeout": 9, "defaultVersion": true, "marName": "scaler.mar",\
            "deviceType": "cpu"}\
  }\
}
key\=with\:escapes = tab\there \u00e9
"""


def test_properties_are_parsed_the_java_way(tmp_path: Path) -> None:
    path = tmp_path / "config.properties"
    path.write_text(PROPERTIES)
    properties = read_properties(path)
    assert properties["management_address"] == "http://127.0.0.1:8091"
    assert properties["metrics_address"] == "http://127.0.0.1:8082"
    assert properties["number_of_netty_threads"] == "4"
    assert properties["models"].startswith('{"scaler": {"1.0": {"batchSize": 8')
    assert properties["key=with:escapes"] == "tab\there é"
    assert not any(key.startswith(("#", "!")) for key in properties)


def test_serving_keys_map_to_settings_and_the_rest_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.properties"
    path.write_text(PROPERTIES)
    values, ignored = read_settings(path)
    settings = Settings(**values)
    assert (settings.host, settings.port) == ("127.0.0.1", 8085)
    assert settings.management_port == 8091
    assert settings.model_store == Path("/srv/models")
    assert settings.models == []
    assert settings.workers == 2
    assert settings.max_queue == 50
    assert settings.max_body_bytes == 1048576
    assert settings.max_response_bytes == 2097152
    assert settings.request_timeout == 12.0
    chosen = settings.model_settings["scaler/1.0"]
    assert (chosen.batch_size, chosen.max_batch_delay, chosen.max_workers) == (8, 5, 2)
    assert (chosen.request_timeout, chosen.default) == (9, True)
    assert "number_of_netty_threads (the front end is one asyncio process)" in ignored
    assert any(line.startswith("metrics_address") for line in ignored)
    assert "models.deviceType" in ignored
    assert settings.install_requirements is True
    assert not any(line.startswith("install_py_dep_per_model") for line in ignored)


def test_load_models_names_archives(tmp_path: Path) -> None:
    path = tmp_path / "config.properties"
    path.write_text("load_models=a.mar, renamed=b.mar,https://example.com/c.mar\n")
    values, ignored = read_settings(path)
    assert values["models"] == ["a.mar", "b.mar"]
    assert any("renamed=" in line for line in ignored)
    assert any("https://example.com/c.mar" in line for line in ignored)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("inference_address=https://0.0.0.0:8443", "TLS proxy"),
        ("inference_address=127.0.0.1:8080", "not an http://HOST:PORT"),
        ("management_address=http://127.0.0.1:99999", "invalid port"),
        ("job_queue_size=many", "not a number"),
        ("models={not json", "not valid JSON"),
        ("models=[1, 2]", "JSON object"),
        ('models={"m": 1}', "map versions"),
        ('models={"m": {"1.0": 5}}', "m/1.0"),
        ("install_py_dep_per_model=yes", "not true or false"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "config.properties"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=r"config\.properties") as raised:
        read_settings(path)
    assert message in raised.value.message


def test_serve_reads_the_config_and_flags_win(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "scale.json").write_text('{"scale": 10}')
    torch_model_archiver(
        "--model-name", "scaler", "--version", "1.0",
        "--serialized-file", str(tmp_path / "scale.json"),
        "--handler", f"{HANDLERS / 'torchserve' / 'function_handler'}:handle",
        "--export-path", str(store),
    )  # fmt: skip
    unused = free_port()
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{unused}\n"
        f"model_store={store}\n"
        "number_of_netty_threads=4\n"
        'models={"scaler": {"1.0": {"batchSize": 4, "maxBatchDelay": 7}}}\n'
    )
    # launch() passes --port and --model-store itself: the flags win over the file.
    server = launch(tmp_path, "--ts-config", str(config), store=tmp_path / "store")
    try:
        assert server.http.put("/predictions/scaler", content=b"4").json()["result"] == 40.0
        described = server.management.get("/models/scaler").json()[0]
        assert described["batchSize"] == 4
        assert described["maxBatchDelay"] == 7
        assert f":{unused}" not in server.url
        assert "Podium ignores number_of_netty_threads" in server.log.read_text()
    finally:
        server.stop()


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.properties"
    config.write_text("inference_address=https://0.0.0.0:443\n")
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "serve", "--ts-config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "TLS proxy" in done.stderr


def test_torchserve_models_syntax_on_the_command_line() -> None:
    assert Settings(models=["all"]).models == []
    assert Settings(models=["nsmc=nsmc.mar", "other"]).models == ["nsmc.mar", "other"]


def test_an_alias_equal_to_the_archive_name_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.properties"
    path.write_text("load_models=nsmc_ts=nsmc_ts.mar\n")
    assert read_settings(path) == ({"models": ["nsmc_ts.mar"]}, [])
