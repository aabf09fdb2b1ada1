"""The token file: written as a new 0600 file that replaces the path, never through a link."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from podium.frontends.rest.token_file import write_secret
from tests.conftest import TOKEN, MakeArchive, Server, StartServer, free_port

SECRET = "secret-value"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the server must never write: the target of a planted link."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text("untouched\n")
    path.chmod(0o644)
    return path


def assert_untouched(victim: Path) -> None:
    assert victim.read_text() == "untouched\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def assert_secret_file(path: Path, secret: str) -> None:
    status = path.lstat()
    assert stat.S_ISREG(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o600
    assert path.read_text() == secret + "\n"


def test_a_symbolic_link_is_replaced_not_written_through(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "podium-token"
    link.symlink_to(victim)
    write_secret(link, SECRET)
    assert_untouched(victim)
    assert_secret_file(link, SECRET)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["elsewhere", "podium-token"]


def test_a_dangling_link_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "podium-token"
    link.symlink_to(tmp_path / "created-by-the-link")
    write_secret(link, SECRET)
    assert not (tmp_path / "created-by-the-link").exists()
    assert_secret_file(link, SECRET)


def test_an_existing_file_is_replaced_with_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "podium-token"
    path.parent.mkdir()
    path.write_text("old\n")
    path.chmod(0o644)
    write_secret(path, SECRET)
    assert_secret_file(path, SECRET)
    write_secret(tmp_path / "new" / "token", SECRET)  # the folder is created
    assert_secret_file(tmp_path / "new" / "token", SECRET)


def test_nothing_is_left_behind_when_the_path_cannot_be_replaced(tmp_path: Path) -> None:
    (tmp_path / "podium-token").mkdir()
    with pytest.raises(OSError):
        write_secret(tmp_path / "podium-token", SECRET)
    assert [path.name for path in tmp_path.iterdir()] == ["podium-token"]


def test_a_server_start_replaces_a_planted_link(
    make_archive: MakeArchive, tmp_path: Path, victim: Path
) -> None:
    make_archive("echo")
    link = tmp_path / "podium-token"
    link.symlink_to(victim)
    inference_link = tmp_path / "podium-token.inference"
    inference_link.symlink_to(victim)
    port, management = free_port(), free_port()
    log = tmp_path / "server.log"
    command = [
        sys.executable,
        "-m",
        "podium.cli",
        "serve",
        "--model-store",
        str(tmp_path / "store"),
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--management-port",
        str(management),
        "--grpc-port",
        "0",
        "--token-file",
        str(link),
    ]  # no --management-token or --inference-token: both are generated and written
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{management}")
    try:
        server.wait_ready()
        assert_untouched(victim)
        token = link.read_text().strip()
        assert_secret_file(link, token)
        assert_secret_file(inference_link, inference_link.read_text().strip())
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.management_url, headers=headers, timeout=30) as client:
            assert client.get("/models").status_code == 200
    finally:
        server.stop()


def test_token_rotation_replaces_a_planted_link(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path, victim: Path
) -> None:
    make_archive("echo")
    link = tmp_path / "rotated"
    server = start_server("--token-file", str(link))
    link.symlink_to(victim)  # planted while the server runs
    fresh = server.management.post("/token").json()["token"]
    assert fresh != TOKEN
    assert_untouched(victim)
    assert_secret_file(link, fresh)
