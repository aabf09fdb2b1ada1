"""Configuration precedence: flags, then PODIUM_* variables, then podium.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from podium.cli import build_settings
from podium.settings import Settings


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "podium.toml").write_text('port = 9000\nmax_queue = 7\nmodels = ["a", "b"]\n')
    assert Settings().port == 9000
    assert Settings().models == ["a", "b"]
    monkeypatch.setenv("PODIUM_PORT", "9100")
    assert Settings().port == 9100
    assert Settings().max_queue == 7
    flags = build_settings({"port": 9200, "max_queue": None, "models": ()})
    assert flags.port == 9200
    assert flags.max_queue == 7
    assert flags.models == ["a", "b"]


def test_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.max_body_bytes <= 64 * 1024 * 1024
    assert settings.request_timeout < settings.load_timeout


def test_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        Settings(port=70000)
    monkeypatch.setenv("PODIUM_REQUEST_TIMEOUT", "-1")
    with pytest.raises(ValidationError):
        Settings()
    (tmp_path / "podium.toml").write_text("unknown_key = 1\n")
    monkeypatch.delenv("PODIUM_REQUEST_TIMEOUT")
    with pytest.raises(ValidationError):
        Settings()
