"""Fixtures that follow the object graph: archives → model store → running server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.archive import Manifest, pack

HANDLERS = Path(__file__).parent / "handlers"
REPO = Path(__file__).parent.parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


MakeArchive = Callable[..., Path]


@pytest.fixture
def make_archive(tmp_path: Path) -> MakeArchive:
    """Pack a handler from tests/handlers into ``tmp_path/store``."""

    def make(name: str, handler: str = "echo.py:EchoHandler", **fields: Any) -> Path:
        store = Path(fields.pop("store", tmp_path / "store"))
        file_name = handler.partition(":")[0]
        manifest = Manifest(name=name, handler=handler, **fields)
        return pack(manifest, {file_name: HANDLERS / file_name}, store)

    return make


TOKEN = "test-management-token"


@dataclass
class Server:
    """A real ``podium serve`` process on free loopback ports (inference, management)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    management_url: str = ""
    http: httpx.Client = field(init=False)
    management: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.management = httpx.Client(
            base_url=self.management_url,
            timeout=60,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    def post(self, path: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        if data is not None:
            kwargs["json"] = data
        return self.http.post(path, **kwargs)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for /ping to say Healthy (the server's own readiness signal)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if self.http.get("/ping").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready:\n{self.log.read_text()}")

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.http.get("/ping")
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"server not listening:\n{self.log.read_text()}")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> int:
        self.http.close()
        self.management.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


StartServer = Callable[..., Server]


def launch(
    folder: Path,
    *flags: str,
    store: Path | None = None,
    ready: bool = True,
    env: dict[str, str] | None = None,
    ports: tuple[int, int] | None = None,
) -> Server:
    """Start ``podium serve`` (log in ``folder``) and wait until it is ready or listening;
    on free ports unless ``ports`` (inference, management) are given. The gRPC port is off
    unless ``flags`` name one (its default, 8085, is no free port)."""
    port, management_port = ports or (free_port(), free_port())
    if "--grpc-port" not in flags:
        flags = (*flags, "--grpc-port", "0")
    log = folder / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "podium.cli",
        "serve",
        "--model-store",
        str(store or folder / "store"),
        "--port",
        str(port),
        "--management-port",
        str(management_port),
        "--management-token",
        TOKEN,
        *flags,
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    server = Server(process, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{management_port}")
    try:
        if ready:
            server.wait_ready()
        else:
            server.wait_listening()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``podium serve`` with extra flags; every server is stopped afterwards."""
    servers: list[Server] = []

    def start(
        *flags: str,
        store: Path | None = None,
        ready: bool = True,
        env: dict[str, str] | None = None,
        ports: tuple[int, int] | None = None,
    ) -> Server:
        server = launch(tmp_path, *flags, store=store, ready=ready, env=env, ports=ports)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def tamper(archive: Path, member: str, extra: bytes) -> None:
    """Rewrite ``archive`` with ``extra`` appended to one member, manifest untouched."""
    import zipfile

    with zipfile.ZipFile(archive) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(archive, "w") as target:
        for info, data in members:
            target.writestr(info, data + extra if info.filename == member else data)


TORCHSERVE_VERSION = "0.12.0"
TORCHSERVE_CACHE = REPO / ".cache" / f"torchserve-{TORCHSERVE_VERSION}"


@pytest.fixture(scope="session")
def torchserve_site() -> Path:
    """A folder holding the real ``torchserve`` package (pip --target, cached in .cache/).

    The test environment itself never has ``ts``: the "installed" case puts this folder on
    the server's PYTHONPATH, so both cases run against really absent or really present code.
    """
    if not (TORCHSERVE_CACHE / "ts" / "torch_handler" / "base_handler.py").is_file():
        partial = TORCHSERVE_CACHE.with_name(TORCHSERVE_CACHE.name + ".partial")
        subprocess.run(["rm", "-rf", str(partial)], check=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(partial),
                f"torchserve=={TORCHSERVE_VERSION}",
            ],
            check=True,
        )
        partial.rename(TORCHSERVE_CACHE)
    return TORCHSERVE_CACHE


@pytest.fixture(scope="module", params=["absent", "installed"])
def torchserve_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra server environment: without the torchserve package, then with it."""
    if request.param == "absent":
        return {}
    site: Path = request.getfixturevalue("torchserve_site")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def torch_model_archiver(*arguments: str) -> None:
    """Run the real ``torch-model-archiver`` (PyPI torch-model-archiver) of this environment."""
    command = Path(sys.executable).with_name("torch-model-archiver")
    done = subprocess.run([str(command), *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torch-model-archiver failed:\n{done.stdout}{done.stderr}")


def zip_bomb(path: Path, zeros: int, *, name: str = "bomb", mar: bool = False) -> Path:
    """A well-formed archive of model ``name`` (a valid manifest; for a .podium, true
    hashes) whose member ``zeros.bin`` is ``zeros`` zero bytes: about a thousandth of that
    on disk."""
    import hashlib
    import zipfile

    import orjson

    from podium.archive import MANIFEST_PATH

    chunk = bytes(1024**2)
    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        with target.open("zeros.bin", "w") as member:
            for start in range(0, zeros, len(chunk)):
                block = chunk[: min(len(chunk), zeros - start)]
                member.write(block)
                digest.update(block)
        target.write(HANDLERS / "echo.py", "echo.py")
        if mar:
            model = {"modelName": name, "handler": "echo.py"}
            target.writestr("MAR-INF/MANIFEST.json", orjson.dumps({"model": model}))
        else:
            files = {
                "zeros.bin": digest.hexdigest(),
                "echo.py": hashlib.sha256((HANDLERS / "echo.py").read_bytes()).hexdigest(),
            }
            manifest = Manifest(name=name, handler="echo.py:EchoHandler", files=files)
            target.writestr(MANIFEST_PATH, manifest.model_dump_json())
    return path


def lie_about_size(path: Path, member: str, size: int, crc: int | None = None) -> None:
    """Rewrite the central directory entry of ``member`` to claim ``size`` uncompressed
    bytes (and ``crc``, if given); its data is left as it is."""
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02")
    name = member.encode()
    while entry != -1:
        length = int.from_bytes(data[entry + 28 : entry + 30], "little")
        if data[entry + 46 : entry + 46 + length] == name:
            break
        entry = data.rfind(b"PK\x01\x02", 0, entry)
    assert entry != -1, f"{member} is not in {path}"
    data[entry + 24 : entry + 28] = size.to_bytes(4, "little")
    if crc is not None:
        data[entry + 16 : entry + 20] = crc.to_bytes(4, "little")
    path.write_bytes(bytes(data))
