"""The web app in a real headless Chromium (Debian's, driven by Playwright for Python),
against a real `hades-perception serve` on 127.0.0.1 that serves the built app at /.

The server follows channel production of a store of its own (two versions of the tiny
test bundle, as in tests/api), so the models page can really promote and roll back; the
predict page's tests use a server of the shipped model, whose tips are worth looking at.
Every test gets a fresh browser page and its own key; what one test moves in the store
it says in its own assertions (the models tests read the store before they act).

Each test's final page is kept as a screenshot in var/test-artifacts/web/ (or
$HADES_TEST_ARTIFACTS/web).

Skipped, with the reason, where the browser, Playwright or the built app is missing
(scripts/setup.sh provides all three on a fresh machine).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hades_perception.api.routes_web import web_dir
from hades_perception.models.store import ModelStore
from tests.api.conftest import MODEL, TINY, Server, _serve, two_version_store
from tests.bundles import NOT_ABOUT_SPEED_MS, SHIPPED
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Each test's last page, kept for a person to look at (CI keeps the folder as an artefact).
SCREENSHOTS = Path(os.environ.get("HADES_TEST_ARTIFACTS") or REPO / "var" / "test-artifacts") / "web"
AXE = REPO / "webapp" / "node_modules" / "axe-core" / "axe.min.js"
# Debian's Chromium as root in a container, with no traffic off this machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return "no Chromium (Debian: apt-get install chromium; scripts/setup.sh does it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (requirements/dev.txt)"
    if not (web_dir() / "index.html").is_file():
        return f"the web app is not built in {web_dir()} (scripts/setup.sh, or npm ci && npm run build in webapp/)"
    return None


MISSING = _missing()
if MISSING:
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """0.0.1-test on production, 0.0.2-test published with a pipeline record, nothing on
    canary: the web tests' own store, since they move its channels."""
    return two_version_store(tmp_path_factory.mktemp("web-store"))


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory, web_store: ModelStore) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("web-server")
    yield from _serve(
        folder,
        *("--store", web_store.blobs.describe(), "--model", MODEL, "--channel", "production"),
        *("--bundle", str(TINY), "--poll-period", "0.3", "--cache-dir", str(folder / "cache")),
        *("--latency-budget-ms", str(NOT_ABOUT_SPEED_MS), "--rate-limit", "off"),
    )


@pytest.fixture(scope="session")
def shipped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shipped default model from its bundle folder: real tips to look at."""
    yield from _serve(tmp_path_factory.mktemp("shipped-server"), "--bundle", str(SHIPPED), "--rate-limit", "off")


class App:
    """A browser page on the web app, signed in with a key of the given scopes."""

    def __init__(self, page: Any, server: Server) -> None:
        self.page, self.server = page, server
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open(self, fragment: str = "") -> App:
        self.page.goto(f"{self.server.url}/{fragment}")
        return self

    def sign_in(self, *scopes: str) -> App:
        key = self.server.key(*scopes)
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("navigation", name="Pages").wait_for()
        return self

    def go(self, title: str) -> App:
        self.page.get_by_role("navigation", name="Pages").get_by_role("link", name=title).click()
        self.page.get_by_role("heading", level=1, name=title).wait_for()
        return self


def new_app(browser: Any, server: Server, shot: str = "", **options: Any) -> Iterator[App]:
    """A fresh browser context (no cookies, no storage) on a laptop-sized screen; at the
    end the page as it was is kept as SCREENSHOTS/<shot>.png."""
    context = browser.new_context(viewport={"width": 1366, "height": 800}, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield App(page, server)
        if shot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', shot)}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def app(browser: Any, web_server: Server, request: pytest.FixtureRequest) -> Iterator[App]:
    yield from new_app(browser, web_server, request.node.name)


def plate_file(tmp_path: Path, name: str = "plate.png") -> Path:
    from tests.api.conftest import PLATES

    dst = tmp_path / name
    shutil.copy(PLATES[0], dst)
    return dst
