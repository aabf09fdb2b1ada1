"""An archive's requirements file, installed for its model alone with --install-requirements.

The package is a wheel made here, found by pip offline (PIP_NO_INDEX, PIP_FIND_LINKS), so
the test needs no index; the archive is a real torch-model-archiver .mar.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

from podium import archive
from tests.conftest import HANDLERS, StartServer, torch_model_archiver


def make_wheel(folder: Path, name: str = "tinydep", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel holding ``name/__init__.py`` with ``VALUE = 42``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: podium-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for path, data in files.items():
            out.writestr(path, data)
        out.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """``needs.mar`` (imports tinydep, which its requirements.txt names) and ``broken.mar``
    (its requirements cannot be met)."""
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "requirements.txt").write_text("tinydep==1.0\n")
    (tmp_path / "impossible.txt").write_text("no-such-package-podium==9.9\n")
    for name, requirements in (("needs", "requirements.txt"), ("broken", "impossible.txt")):
        torch_model_archiver(
            "--model-name", name, "--version", "1.0", "--export-path", str(store),
            "--handler", f"{HANDLERS / 'torchserve' / 'dep_handler'}:handle",
            "--requirements-file", str(tmp_path / requirements),
        )  # fmt: skip
    return store


def offline_pip(tmp_path: Path) -> dict[str, str]:
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    make_wheel(wheels)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def test_requirements_are_installed_for_their_model_alone(
    store: Path, tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(
        "--install-requirements", "--work-dir", str(tmp_path / "work"),
        store=store, env=offline_pip(tmp_path),
    )  # fmt: skip
    answer = server.post("/predictions/needs", {"x": 1})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["value"] == 42
    # Installed inside the model's unpacked folder, not into the server's environment.
    assert Path(found["module"]).is_relative_to(tmp_path / "work" / "needs-1.0" / ".podium-deps")
    assert importlib.util.find_spec("tinydep") is None
    # The archive whose requirements cannot be installed is not served, with pip's reason
    # in the log; the other model is.
    assert server.post("/predictions/broken", {"x": 1}).status_code == 404
    log = server.log.read_text()
    assert "pip could not install impossible.txt" in log
    assert "no-such-package-podium" in log
    registered = server.management.post("/models", params={"url": "broken.mar"})
    assert registered.status_code == 500
    assert registered.json()["type"] == "RequirementsError"
    assert "no-such-package-podium" in registered.json()["message"]
    assert server.post("/predictions/needs", {"x": 2}).json()["value"] == 42


def test_without_the_flag_requirements_are_named_not_installed(
    tmp_path: Path, start_server: StartServer
) -> None:
    store = tmp_path / "store"
    (tmp_path / "requirements.txt").write_text("tinydep==1.0\n")
    manifest = archive.Manifest(name="echo", handler="echo.py", requirements="requirements.txt")
    archive.pack(
        manifest,
        {"echo.py": HANDLERS / "echo.py", "requirements.txt": tmp_path / "requirements.txt"},
        store,
    )
    server = start_server(store=store, env=offline_pip(tmp_path))
    assert server.post("/predictions/echo", {"a": 1}).json()["echo"] == {"a": 1}
    log = server.log.read_text()
    assert "echo/1.0 names requirements.txt; it is not installed" in log
    assert "--install-requirements" in log
