"""Registration from a URL: the allow-list matches normalised URLs, the download has a
deadline, and a refused download or registration leaves nothing in the model store."""

from __future__ import annotations

import http.server
import os
import posixpath
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest

from podium.core.fetch import DOWNLOAD_TIMEOUT, check_allowed, normalise
from podium.errors import Forbidden
from podium.settings import Settings
from tests.conftest import MakeArchive, StartServer, zip_bomb


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTP://Host/releases/./a/../b.podium#x", "http://host/releases/b.podium"),
        ("http://host/releases/%2e%2e/private/x.podium", "http://host/private/x.podium"),
        ("http://host/releases/%2E./x.podium", "http://host/x.podium"),
        ("http://host/releases/echo%2D1.0%2epodium", "http://host/releases/echo-1.0.podium"),
        ("http://host/a b/%c3%bc/x%3a.podium", "http://host/a%20b/%C3%BC/x%3A.podium"),
        ("http://host/releases/", "http://host/releases/"),
        ("http://host", "http://host/"),
        ("http://user:secret@host:8080/x.podium?v=1", "http://host:8080/x.podium?v=1"),
        ("http://[::1]:8080/x.podium", "http://[::1]:8080/x.podium"),
    ],
)
def test_normalise(url: str, normal: str) -> None:
    assert normalise(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        "http://host/releases/..%2fprivate/x.podium",
        "http://host/releases/%2F/x.podium",
        "http://host/releases/..%5cprivate/x.podium",
        "http://host/releases/..\\private/x.podium",
        "http://host/releases/x%00.podium",
        "http://host/releases/%252e%252e/x.podium",
        "http://host/releases/%zz.podium",
        "http://host/releases/x%2.podium",
        "http://host/releases/..;/private/x.podium",
        "http://host/releases/.;x/x.podium",
        "http://host:99999/x.podium",
        "ftp://host/x.podium",
        "http:///x.podium",
    ],
)
def test_ambiguous_or_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(Forbidden):
        normalise(url)


def test_the_allow_list_matches_normalised_urls() -> None:
    allowed = ["http://HOST/releases/"]
    assert check_allowed("http://host/releases/%2e/a.podium", allowed) == (
        "http://host/releases/a.podium"
    )
    for url in [
        "http://host/releases/%2e%2e/private/x.podium",
        "http://host/releases/a/%2E%2E/%2e%2e/private/x.podium",
        "http://host/releases-private/x.podium",
        "http://host/releases",
        "http://other/releases/x.podium",
    ]:
        with pytest.raises(Forbidden):
            check_allowed(url, allowed)


@dataclass
class Route:
    """What the origin answers for one path: a status and a body, sent slowly if asked."""

    body: bytes = b""
    status: int = 200
    seconds_per_byte: float = 0.0


@dataclass
class Origin:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    """Every request path as it arrived, before the origin decodes it."""


@contextmanager
def origin() -> Iterator[Origin]:
    """A loopback HTTP origin in a thread. Like common servers, it percent-decodes the path
    and resolves ``..`` before looking the file up."""
    stopping = threading.Event()
    served = Origin("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requested.append(self.path)
            route = served.routes.get(posixpath.normpath(unquote(self.path)), Route(status=404))
            self.send_response(route.status)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if not route.seconds_per_byte:
                self.wfile.write(route.body)
                return
            for index in range(len(route.body)):
                if stopping.wait(route.seconds_per_byte):
                    return
                try:
                    self.wfile.write(route.body[index : index + 1])
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield served
    finally:
        stopping.set()
        server.shutdown()
        thread.join()
        server.server_close()


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.timeout(60)
def test_encoded_dot_segments_never_reach_the_origin(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    remote = make_archive("remote", store=tmp_path / "remote")
    secret = make_archive("secret", store=tmp_path / "secret")
    with origin() as source:
        source.routes["/releases/remote-1.0.podium"] = Route(remote.read_bytes())
        source.routes["/private/secret-1.0.podium"] = Route(secret.read_bytes())
        server = start_server("--allowed-urls", f"{source.url}/releases/")
        post = server.management.post
        for path in [
            "/releases/%2e%2e/private/secret-1.0.podium",
            "/releases/%2E%2E/private/secret-1.0.podium",
            "/releases/..%2fprivate%2fsecret-1.0.podium",
            "/releases/..%5cprivate%5csecret-1.0.podium",
            "/releases-private/secret-1.0.podium",
        ]:
            refused = post("/models", params={"url": source.url + path})
            assert refused.status_code == 403, (path, refused.text)
        assert source.requested == []
        registered = post("/models", params={"url": f"{source.url}/releases/remote%2D1.0.podium"})
        assert registered.status_code == 200, registered.text
        assert source.requested == ["/releases/remote-1.0.podium"]
    assert listing(tmp_path / "store") == ["echo-1.0.podium", "remote-1.0.podium"]
    assert server.post("/predictions/secret", {"x": 1}).status_code == 404


@pytest.mark.timeout(60)
def test_a_slow_origin_meets_the_download_deadline(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    with origin() as source:
        source.routes["/slow-1.0.podium"] = Route(bytes(1000), seconds_per_byte=0.05)
        server = start_server("--allowed-urls", f"{source.url}/", "--download-timeout", "1")
        started = time.monotonic()
        answer = server.management.post("/models", params={"url": f"{source.url}/slow-1.0.podium"})
        waited = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    assert answer.json()["type"] == "RequestTimeout"
    assert "download_timeout" in answer.json()["message"]
    assert 1 <= waited < 10
    assert listing(tmp_path / "store") == ["echo-1.0.podium"]


@pytest.mark.timeout(90)
def test_refused_downloads_and_registrations_leave_nothing_in_the_store(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    other = make_archive("other", store=tmp_path / "remote")
    bomb = zip_bomb(tmp_path / "bomb-1.0.podium", 64 * 1024**2)
    with origin() as source:
        source.routes.update(
            {
                "/big-1.0.podium": Route(os.urandom(2 * 1024**2)),
                "/failing-1.0.podium": Route(b"busy", status=500),
                "/junk-1.0.podium": Route(b"not a zip archive"),
                "/bomb-1.0.podium": Route(bomb.read_bytes()),
                "/other-1.0.podium": Route(other.read_bytes()),
                "/later.mar": Route(b"not a zip archive either"),
            }
        )
        server = start_server(
            "--allowed-urls", f"{source.url}/", "--max-archive-bytes", str(1024**2)
        )

        def register(name: str, **params: str) -> tuple[int, str]:
            """The status and body of a registration of ``name`` from the origin."""
            answer = server.management.post(
                "/models", params={"url": f"{source.url}/{name}", **params}
            )
            return answer.status_code, answer.text

        status, body = register("big-1.0.podium")
        assert (status, "larger than 1048576 bytes" in body) == (400, True)
        assert register("failing-1.0.podium")[0] == 400
        assert register("junk-1.0.podium")[0] == 400
        status, body = register("bomb-1.0.podium")
        assert (status, "max_compression_ratio" in body) == (400, True)
        assert register("other-1.0.podium", model_name="another")[0] == 400
        assert listing(tmp_path / "store") == ["echo-1.0.podium"]

        assert register("later.mar", synchronous="false")[0] == 202
        deadline = time.monotonic() + 20
        while (tmp_path / "store" / "later.mar").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listing(tmp_path / "store") == ["echo-1.0.podium"]

        # Nothing stale blocks a second, valid try.
        assert register("other-1.0.podium")[0] == 200
    assert server.post("/predictions/other", {"x": 1}).status_code == 200


def test_the_default_deadline_is_the_settings_default() -> None:
    assert Settings.model_fields["download_timeout"].default == DOWNLOAD_TIMEOUT
