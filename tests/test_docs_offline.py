"""``/docs`` and ``/redoc`` render with the network cut off: everything they load comes
from the server itself (no CDN, no fonts, no validator).

Debian's chromium (``apt-get install chromium``; ``.ci/run`` installs it) is driven by
Playwright for Python; Playwright's own browser download is never used. Every request
that is not to the server is aborted and recorded, and none may be made.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import TOKEN, MakeArchive, Server, StartServer

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():  # pragma: no cover - CI installs it
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(shutil.which(CHROMIUM) or CHROMIUM), headless=True, args=ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def server(make_archive: MakeArchive, start_server: StartServer) -> Server:
    make_archive("echo")
    return start_server()


class OfflinePage:
    """A page whose requests reach only 127.0.0.1; the others are aborted and listed."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.refused: list[str] = []
        self.page.route("**/*", self.only_loopback)

    def only_loopback(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser: Any) -> Iterator[OfflinePage]:
    page = OfflinePage(browser)
    yield page
    page.close()
    assert page.refused == []


def swagger_paths(page: Any, url: str) -> set[str]:
    page.goto(url)
    page.wait_for_selector(".opblock", timeout=WAIT_MS)
    located = page.locator(".opblock-summary-path")
    return {located.nth(i).get_attribute("data-path") for i in range(located.count())}


def test_swagger_ui_on_the_inference_port(server: Server, offline: OfflinePage) -> None:
    paths = swagger_paths(offline.page, f"{server.url}/docs")
    assert {
        "/ping",
        "/predictions/{model}",
        "/explanations/{model}",
        "/v2/models/{model}/infer",
    } <= (paths)


def test_swagger_ui_on_the_management_port_authorizes_with_the_token(
    server: Server, offline: OfflinePage
) -> None:
    page = offline.page
    paths = swagger_paths(page, f"{server.management_url}/docs")
    assert {"/models", "/models/{model}/{version}"} <= paths
    # The page loaded without the token; its calls carry the one given to Authorize.
    page.click("button.authorize")
    page.fill(".modal-ux input", TOKEN)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    page.click("#operations-default-list_models_models_get .opblock-summary")
    page.click("#operations-default-list_models_models_get .try-out__btn")
    page.click("#operations-default-list_models_models_get .execute")
    listed = "#operations-default-list_models_models_get .live-responses-table tr.response"
    status = page.locator(f"{listed} .response-col_status")
    status.first.wait_for(timeout=WAIT_MS)
    assert status.first.inner_text().strip() == "200"


@pytest.mark.parametrize("port", ["inference", "management"])
def test_redoc(server: Server, offline: OfflinePage, port: str) -> None:
    page = offline.page
    base = server.url if port == "inference" else server.management_url
    page.goto(f"{base}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=WAIT_MS)
    text = page.locator("body").inner_text()
    assert ("/predictions/{model}" if port == "inference" else "/models/{model}") in text
