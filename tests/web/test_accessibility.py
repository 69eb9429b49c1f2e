"""Every page passes axe-core's checks (WCAG 2.1 A and AA: labels, contrast, roles,
names) with no serious or critical finding, and the app works from the keyboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server
from tests.web.conftest import AXE, App, new_app, plate_file

SERIOUS = ("serious", "critical")


@pytest.fixture
def app(browser: Any, web_server: Server, request: pytest.FixtureRequest) -> Iterator[App]:
    """The app's Content-Security-Policy forbids injected scripts (axe-core is one): this
    context bypasses it, for these checks only."""
    yield from new_app(browser, web_server, request.node.name, bypass_csp=True)


def violations(app: App) -> list[dict[str, Any]]:
    app.page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = app.page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:120] for n in v["nodes"][:3]]}
        for v in found
        if v["impact"] in SERIOUS
    ]


def test_the_sign_in_page(app: App):
    app.open()
    app.page.get_by_label("API key").wait_for()
    assert violations(app) == []


@pytest.mark.parametrize("page", ["Models", "Live", "Monitoring", "Jobs"])
def test_each_page(app: App, page: str):
    app.open().sign_in("read", "predict", "promote")
    app.go(page)
    app.page.wait_for_load_state("networkidle")
    assert violations(app) == []


def test_the_predict_page_with_a_prediction(browser: Any, shipped_server: Server, tmp_path: Path):
    for app in new_app(browser, shipped_server, "accessibility_predict", bypass_csp=True):
        app.open().sign_in("predict")
        app.page.get_by_label("Drop a plate image here", exact=False).set_input_files(str(plate_file(tmp_path)))
        app.page.get_by_test_id("plants").wait_for()
        assert violations(app) == []


def test_the_keyboard_reaches_the_skip_link_and_the_pages(app: App):
    app.open().sign_in("read", "predict")
    app.page.keyboard.press("Tab")
    assert app.page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    for _ in range(2):  # from the skip link: Predict, Models
        app.page.keyboard.press("Tab")
    assert app.page.evaluate("() => document.activeElement.textContent") == "Models"
    app.page.keyboard.press("Enter")
    app.page.get_by_role("heading", level=1, name="Models").wait_for()
