"""TorchServe's ``config.properties``, read into Podium settings (``podium serve --ts-config``).

The keys that decide how models are served map to settings:

    inference_address          host, port            (http only; TLS belongs to a proxy)
    management_address         management_host, management_port
    model_store                model_store
    load_models                models                ("all", or archive names, name=file.mar)
    default_workers_per_model  workers
    job_queue_size             max_queue
    max_request_size           max_body_bytes
    max_response_size          max_response_bytes
    default_response_timeout   request_timeout       (seconds)
    install_py_dep_per_model   install_requirements  (true/false)
    models                     model_settings        (batchSize, maxBatchDelay, minWorkers,
                                                      maxWorkers, responseTimeout,
                                                      defaultVersion per model version)

Every other key is reported back as ignored, with the reason where there is one, so nothing
is dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from podium.errors import ConfigError

# Keys Podium has its own answer for: said once, with the reason.
EXPLAINED = {
    "metrics_address": "metrics are served at /metrics on the inference port",
    "enable_metrics_api": "metrics are served at /metrics on the inference port",
    "metrics_mode": "metrics are Prometheus text at /metrics",
    "disable_token_authorization": "the management API always needs its token",
    "enable_model_api": "the management API (with its token) can always register models",
    "allowed_urls": "Podium's allowed_urls are prefixes and empty by default; set them there",
    "number_of_netty_threads": "the front end is one asyncio process",
    "netty_client_threads": "the front end is one asyncio process",
    "vmargs": "there is no JVM",
}
PER_MODEL = {
    "batchSize": "batch_size",
    "maxBatchDelay": "max_batch_delay",
    "minWorkers": "min_workers",
    "maxWorkers": "max_workers",
    "responseTimeout": "request_timeout",
    "defaultVersion": "default",
}
SIZE_KEYS = {
    "default_workers_per_model": "workers",
    "job_queue_size": "max_queue",
    "max_request_size": "max_body_bytes",
    "max_response_size": "max_response_bytes",
}


def read_settings(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Settings values from a config.properties, and one line per key Podium ignores."""
    properties = read_properties(path)
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in properties.items():
        where = f"{path.name}: {key}"
        if key == "inference_address":
            values["host"], values["port"] = _address(value, 8080, where)
        elif key == "management_address":
            values["management_host"], values["management_port"] = _address(value, 8081, where)
        elif key == "model_store":
            values["model_store"] = Path(value)
        elif key == "load_models":
            values["models"], skipped = _load_models(value)
            ignored += skipped
        elif key in SIZE_KEYS:
            values[SIZE_KEYS[key]] = _number(value, int, where)
        elif key == "default_response_timeout":
            values["request_timeout"] = _number(value, float, where)
        elif key == "install_py_dep_per_model":
            values["install_requirements"] = _boolean(value, where)
        elif key == "models":
            values["model_settings"], skipped = _models(value, where)
            ignored += skipped
        elif key in EXPLAINED:
            ignored.append(f"{key} ({EXPLAINED[key]})")
        else:
            ignored.append(key)
    return values, ignored


def _boolean(value: str, where: str) -> bool:
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{where}: {value!r} is not true or false")


def _address(value: str, default_port: int, where: str) -> tuple[str, int]:
    parts = urlsplit(value)
    if parts.scheme == "https":
        raise ConfigError(
            f"{where}: https is not served by Podium itself; put a TLS proxy in front"
        )
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"{where}: {value!r} is not an http://HOST:PORT address")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"{where}: {value!r} has an invalid port") from None
    return parts.hostname, port


def _load_models(value: str) -> tuple[list[str], list[str]]:
    """``all``/``standalone`` → every model; else archive names, each maybe ``name=file``."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries or any(entry in ("all", "standalone") for entry in entries):
        return [], []
    models: list[str] = []
    skipped: list[str] = []
    for entry in entries:
        alias, _, archive = entry.rpartition("=")
        if "://" in archive:
            skipped.append(f"load_models entry {entry} (register URLs through the management API)")
            continue
        if alias and alias != Path(archive).stem:
            skipped.append(f"load_models alias {alias}= (a model keeps its archive's name)")
        models.append(archive)
    return models, skipped


def _models(value: str, where: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    try:
        table = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a JSON object of models")
    chosen: dict[str, dict[str, Any]] = {}
    skipped: set[str] = set()
    for name, versions in table.items():
        if not isinstance(versions, dict):
            raise ConfigError(f"{where}: {name} must map versions to settings")
        for version, fields in versions.items():
            if not isinstance(fields, dict):
                raise ConfigError(f"{where}: {name}/{version} must be a JSON object")
            entry = {PER_MODEL[k]: v for k, v in fields.items() if k in PER_MODEL}
            skipped.update(f"models.{k}" for k in fields if k not in PER_MODEL and k != "marName")
            chosen[f"{name}/{version}"] = entry
    return chosen, sorted(skipped)


def _number(value: str, kind: type[int] | type[float], where: str) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a number") from None


# Java .properties: "key=value", "key: value" or "key value"; # and ! start comments; a
# line ending in an odd number of backslashes continues on the next.
ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
BLANK = " \t\f"


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java properties file into a dict (the last value of a key wins)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    properties: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip(BLANK)
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            logical += line[:-1]
            continue
        key, value = _split(logical + line)
        properties[key] = value
        logical = ""
    if logical:
        key, value = _split(logical)
        properties[key] = value
    return properties


def _split(line: str) -> tuple[str, str]:
    """A logical line → key and value: the key ends at the first unescaped =, : or blank."""
    index = 0
    while index < len(line) and line[index] not in "=:" + BLANK:
        index += 2 if line[index] == "\\" else 1
    rest = line[index:].lstrip(BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(BLANK)
    return _unescape(line[:index]), _unescape(rest.rstrip())


def _unescape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if len(escaped) == 5:
            return chr(int(escaped[1:], 16))
        return ESCAPES.get(escaped, escaped)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", replace, text)
