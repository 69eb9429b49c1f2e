"""The predict page: a person drops a plate and sees what a robot would get for it —
masks per class (each switchable), every primary tip with its plant number, the
plants' traits and certainty — the same as the API answers for that image."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.api.conftest import PLATES, Server
from tests.bundles import SHIPPED
from tests.web.conftest import App, new_app, plate_file


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


CANVAS_SUM = """() => {
  const c = document.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7;
  return s;
}"""


@pytest.fixture
def app(browser: Any, shipped_server: Server, request: pytest.FixtureRequest) -> Iterator[App]:
    yield from new_app(browser, shipped_server, request.node.name)


def predicted(app: App, path: Path) -> dict[str, Any]:
    """What the API answers for this file (the page's request, without masks)."""
    r = app.server.predict(path.read_bytes(), app.server.key("predict"))
    assert r.status == 200, r
    doc: dict[str, Any] = r.json()
    return doc


def choose(app: App, path: Path) -> None:
    app.page.get_by_label("Drop a plate image here", exact=False).set_input_files(str(path))
    app.page.get_by_test_id("plants").wait_for()
    app.page.wait_for_function("() => document.querySelector('canvas') !== null")


class TestAPlateShowsWhatTheRobotGets:
    def test_every_plant_has_a_row_and_every_primary_tip_a_numbered_marker(self, app: App, tmp_path: Path):
        plate = plate_file(tmp_path)
        truth = predicted(app, plate)
        app.open().sign_in("predict")
        choose(app, plate)

        rows = app.page.get_by_test_id("plants").locator("tbody tr")
        assert rows.count() == len(truth["plants"]) == 5  # the manifest's plant count
        tips = [lm for lm in truth["landmarks"] if lm["kind"] == "primary_root_tip"]
        assert len(tips) >= 3  # the shipped model finds tips on this small plate: something to compare
        markers = app.page.locator("svg[data-testid=landmarks] g.primary_root_tip")
        assert markers.count() == len(tips)
        shown = sorted(int(markers.nth(i).get_attribute("data-plant") or -1) for i in range(markers.count()))
        assert shown == sorted(t["plant"] for t in tips)
        assert sorted(markers.locator("text").all_text_contents()) == sorted(str(t["plant"]) for t in tips)
        for i, p in enumerate(truth["plants"]):
            row = rows.nth(i).inner_text()
            assert row.startswith(str(p["plant"]))
            assert ("low confidence" in row) == p["low_confidence"]
        status = app.page.get_by_role("status").first.inner_text()
        assert "5 plants" in status and truth["model"]["version"] in status
        assert app.errors == []

    def test_a_class_switched_off_leaves_the_picture_and_switched_on_brings_it_back(self, app: App, tmp_path: Path):
        app.open().sign_in("predict")
        choose(app, plate_file(tmp_path))
        root = app.page.get_by_role("group", name="Masks").get_by_label("root", exact=True)
        app.page.wait_for_function(f"() => ({CANVAS_SUM})() > 0")
        with_root = app.page.evaluate(CANVAS_SUM)
        root.uncheck()
        without_root = app.page.evaluate(CANVAS_SUM)
        root.check()
        assert without_root != with_root
        assert app.page.evaluate(CANVAS_SUM) == with_root

    def test_landmark_kinds_switch_off_too(self, app: App, tmp_path: Path):
        app.open().sign_in("predict")
        choose(app, plate_file(tmp_path))
        markers = app.page.locator("svg[data-testid=landmarks] g.primary_root_tip")
        before = markers.count()
        app.page.get_by_role("group", name="Landmarks").get_by_label("primary root tip").uncheck()
        assert before > 0 and markers.count() == 0

    def test_zoom_in_and_fit_from_the_keyboard(self, app: App, tmp_path: Path):
        app.open().sign_in("predict")
        choose(app, plate_file(tmp_path))
        zoom = app.page.get_by_test_id("zoom")
        fit = zoom.inner_text()
        app.page.get_by_role("button", name="Zoom in").focus()
        app.page.keyboard.press("Enter")
        assert zoom.inner_text() != fit
        stack, frame = app.page.locator(".stack").bounding_box(), app.page.locator(".frame").bounding_box()
        assert stack is not None and frame is not None and stack["width"] > frame["width"]
        app.page.get_by_role("button", name="Fit").focus()
        app.page.keyboard.press("Enter")
        assert zoom.inner_text() == fit


class TestFilesAPersonMightDrop:
    def test_a_file_dropped_on_the_zone_is_predicted(self, app: App):
        app.open().sign_in("predict")
        data = base64.b64encode(PLATES[0].read_bytes()).decode()
        transfer = app.page.evaluate_handle(
            """(b64) => {
              const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
              const dt = new DataTransfer();
              dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
              return dt;
            }""",
            data,
        )
        app.page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
        app.page.get_by_test_id("plants").wait_for()
        assert "dropped.png" in app.page.get_by_role("status").first.inner_text()

    def test_a_16_bit_grey_tiff_shows_as_a_picture(self, app: App, tmp_path: Path):
        grey = cv2.cvtColor(read(PLATES[0]), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
        tiff = tmp_path / "plate16.tif"
        assert cv2.imwrite(str(tiff), grey)
        app.open().sign_in("predict")
        choose(app, tiff)
        # The preview the server sent (8-bit JPEG of the image as read) is drawn: the
        # canvas is not the empty dark background. The browser decodes it after the canvas
        # appears, so wait for the picture (a read straight away once saw the background).
        centre = (
            "() => { const c = document.querySelector('canvas');"
            " const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data; return d[0]; }"
        )
        app.page.wait_for_function(f"() => ({centre})() > 60", timeout=15_000)
        assert app.page.evaluate(centre) > 60

    def test_a_file_that_is_not_an_image_gets_the_servers_reason_and_the_next_plate_works(
        self, app: App, tmp_path: Path
    ):
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"these are field notes, not a PNG")
        app.open().sign_in("predict")
        app.page.get_by_label("Drop a plate image here", exact=False).set_input_files(str(bad))
        alert = app.page.get_by_role("alert")
        alert.wait_for()
        assert "notes.png" in alert.inner_text() and "image" in alert.inner_text().lower()
        choose(app, plate_file(tmp_path))
        assert app.page.get_by_role("alert").count() == 0


def test_the_page_asks_the_api_for_masks_and_a_preview(app: App, tmp_path: Path):
    """The page's request is the documented one (docs/api.md), not a private route."""
    app.open().sign_in("predict")
    with app.page.expect_request(lambda r: "/v1/predict" in r.url) as req:
        app.page.get_by_label("Drop a plate image here", exact=False).set_input_files(str(plate_file(tmp_path)))
    assert req.value.url.endswith("/v1/predict?masks=true&preview=true")
    assert req.value.headers["authorization"].startswith("Bearer ")
    response = req.value.response()
    classes = json.loads((SHIPPED / "manifest.json").read_text())["outputs"]["segmentation"]["classes"]
    assert response is not None and sorted(json.loads(response.body())["masks"]) == sorted(classes)
