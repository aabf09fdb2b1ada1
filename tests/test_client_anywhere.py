"""``Client`` and ``AsyncClient`` against a server that wants tokens, and against none:
tokens as Bearer, the management API as methods, transport failures as Podium's errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from podium import (
    AsyncClient,
    Client,
    InvalidRequest,
    ModelNotFound,
    RequestTimeout,
    ServerUnreachable,
    Unauthorized,
)
from podium.archive import Manifest, pack
from tests.conftest import HANDLERS, TOKEN, Server, free_port, launch

INFERENCE_TOKEN = "inference-sesame"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, on loopback, with an inference token given."""
    folder = tmp_path_factory.mktemp("guarded")
    for version in ("1.0", "2.0"):
        manifest = Manifest(name="echo", handler="echo.py:EchoHandler", version=version)
        pack(manifest, {"echo.py": HANDLERS / "echo.py"}, folder / "store")
    running = launch(folder, "--inference-token", INFERENCE_TOKEN, "--models", "echo-1.0.podium")
    yield running
    running.stop()


def test_client_sends_the_tokens(server: Server) -> None:
    guarded = Client(
        server.url,
        token=INFERENCE_TOKEN,
        management_url=server.management_url,
        management_token=TOKEN,
    )
    with guarded as client:
        assert client.ping()
        assert client.predict("echo", {"a": 1})["echo"] == {"a": 1}
        streamed = list(client.stream("echo", {"stream": 1}))
        assert streamed[0] == {"part": 0} and streamed[1]["echo"] == {"stream": 1}
        assert client.infer("echo", {"x": np.ones((1, 2), np.float32)})
        assert client.models() == [{"modelName": "echo", "modelUrl": "echo/1.0"}]
        assert client.register("echo-2.0.podium", batch_size=4)["status"].startswith("Model echo")
        (described,) = client.describe("echo", "2.0")
        assert described["batchSize"] == 4 and described["default"] is True  # the highest
        assert client.scale("echo", "2.0", min_workers=1, max_workers=2)["status"]
        with pytest.raises(InvalidRequest, match="below"):
            client.scale("echo", "2.0", min_workers=3, max_workers=1)
        assert client.set_default("echo", "1.0")["status"]
        assert [d["default"] for d in client.describe("echo")] == [True, False]
        assert client.unregister("echo", "2.0")["status"]
        with pytest.raises(ModelNotFound):
            client.describe("echo", "2.0")
    # A given token is enforced on loopback too; the management token is not the other.
    with Client(server.url, management_url=server.management_url) as anonymous:
        assert anonymous.ping()  # health needs no token
        with pytest.raises(Unauthorized):
            anonymous.predict("echo", {"a": 1})
        with pytest.raises(Unauthorized):
            list(anonymous.stream("echo", {"a": 1}))
        with pytest.raises(Unauthorized):
            anonymous.models()
    with Client(server.url, token=TOKEN) as wrong, pytest.raises(Unauthorized):
        wrong.predict("echo", {"a": 1})


def test_async_client_sends_the_tokens(server: Server) -> None:
    async def calls() -> None:
        guarded = AsyncClient(
            server.url,
            token=INFERENCE_TOKEN,
            management_url=server.management_url,
            management_token=TOKEN,
        )
        async with guarded as client:
            assert await client.ping()
            answers = await asyncio.gather(*(client.predict("echo", {"n": n}) for n in range(3)))
            assert [answer["echo"] for answer in answers] == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert (await client.predict("echo", b"\x07", version="1.0"))["echo"] == "07"
            parts = [part async for part in client.stream("echo", {"stream": 2})]
            assert parts[:2] == [{"part": 0}, {"part": 1}] and parts[2]["echo"] == {"stream": 2}
            events = [part async for part in client.stream("echo", {"stream": 1}, events=True)]
            assert events[0] == {"part": 0} and events[1]["echo"] == {"stream": 1}
            tensors = await client.infer("echo", {"x": np.ones((1, 2), np.float32)})
            assert tensors
            assert await client.models() == [{"modelName": "echo", "modelUrl": "echo/1.0"}]
            (described,) = await client.describe("echo")
            assert described["modelVersion"] == "1.0"
            with pytest.raises(InvalidRequest, match="below"):
                await client.scale("echo", min_workers=3, max_workers=1)
            with pytest.raises(ModelNotFound):
                await client.predict("ghost", 1)
            with pytest.raises(ModelNotFound):
                await client.set_default("echo", "9")
        async with AsyncClient(server.url, management_url=server.management_url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.predict("echo", {"a": 1})
            with pytest.raises(Unauthorized):
                [part async for part in anonymous.stream("echo", {"a": 1})]
            with pytest.raises(Unauthorized):
                await anonymous.describe("echo")

    asyncio.run(calls())


def test_a_closed_port_is_server_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    expected = f"cannot reach {url}: connection refused"
    with Client(url, management_url=url) as client:
        for call in (
            lambda: client.predict("echo", {"a": 1}),
            lambda: list(client.stream("echo", {"a": 1})),
            lambda: client.infer("echo", {"x": [1.0]}),
            client.ping,
            client.models,
        ):
            with pytest.raises(ServerUnreachable) as raised:
                call()
            assert raised.value.message == expected
            assert raised.value.status == 503

    async def calls() -> None:
        async with AsyncClient(url, management_url=url) as client:
            with pytest.raises(ServerUnreachable, match=f"^{expected}$"):
                await client.predict("echo", {"a": 1})
            with pytest.raises(ServerUnreachable, match=f"^{expected}$"):
                [part async for part in client.stream("echo", {"a": 1})]
            with pytest.raises(ServerUnreachable, match=f"^{expected}$"):
                await client.scale("echo", min_workers=1)

    asyncio.run(calls())


def test_an_unknown_host_is_server_unreachable() -> None:
    with Client("http://podium-test.invalid:8080") as client, pytest.raises(ServerUnreachable):
        client.predict("echo", 1)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_no_answer_in_time_is_request_timeout(silent_url: str) -> None:
    message = f"^no answer from {silent_url} within 0.2 s$"
    with Client(silent_url, timeout=0.2) as client:
        with pytest.raises(RequestTimeout, match=message):
            client.predict("echo", {"a": 1})
        with pytest.raises(RequestTimeout, match=message):
            list(client.stream("echo", {"a": 1}))

    async def calls() -> None:
        async with AsyncClient(silent_url, timeout=0.2) as client:
            with pytest.raises(RequestTimeout, match=message):
                await client.predict("echo", {"a": 1})

    asyncio.run(calls())


def test_management_calls_wait_longer_by_default(tmp_path: Path) -> None:
    client = Client()
    assert (client.timeout, client.management_timeout) == (60.0, 300.0)
    client.close()


def test_a_given_inference_token_is_always_enforced() -> None:
    from podium.frontends.rest.run import inference_token
    from podium.settings import Settings

    for auth in (True, False):
        given = Settings(host="127.0.0.1", auth=auth, inference_token="given")
        assert inference_token(given) == "given"
