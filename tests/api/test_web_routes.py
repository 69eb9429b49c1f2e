"""What the web app needs from the server: the built app at / and /assets with a
Content-Security-Policy (or, unbuilt, a page that says how to build it), GET /v1/me,
`?preview=true` on predict, and GET /v1/live saying what the live feed holds."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_perception.api.routes_web import web_dir
from tests.api.conftest import PLATES, TINY, Server


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


BUILT = (web_dir() / "index.html").is_file()
needs_build = pytest.mark.skipif(not BUILT, reason=f"the web app is not built in {web_dir()} (scripts/setup.sh)")


@needs_build
def test_the_app_and_its_assets_are_served_with_a_content_security_policy(store_server: Server):
    page = store_server.request("GET", "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = re.search(rb'src="\.?/?(assets/[^"]+\.js)"', page.body)
    assert script is not None, page.body[:300]
    asset = store_server.request("GET", "/" + script.group(1).decode())
    assert asset.status == 200 and "javascript" in asset.headers["Content-Type"]
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert store_server.request("GET", "/assets/..%2F..%2Fapp.py").status == 404


def test_an_unbuilt_app_says_how_to_build_it_and_the_api_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HADES_WEB_DIR", str(tmp_path / "nothing-built"))
    server = Server(tmp_path, "--bundle", str(TINY), "--live-namespace", "").wait_ready()
    try:
        page = server.request("GET", "/")
        assert page.status == 503 and b"npm ci &amp;&amp; npm run build" in page.body
        assert server.predict(PLATES[0].read_bytes(), server.key("predict")).status == 200
    finally:
        server.stop()


def test_me_names_the_key_and_its_scopes_and_needs_a_key(store_server: Server):
    r = store_server.request("GET", "/v1/me", store_server.key("read", "predict"))
    assert r.status == 200 and r.json()["scopes"] == ["read", "predict"]
    assert r.json()["name"].startswith("test-")
    assert store_server.request("GET", "/v1/me").status == 401


def test_preview_is_the_image_as_read_in_8_bit_rgb_whatever_was_sent(store_server: Server):
    grey16 = cv2.cvtColor(read(PLATES[0]), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    ok, tiff = cv2.imencode(".tif", grey16)
    assert ok
    r = store_server.predict(tiff.tobytes(), store_server.key("predict"), "?preview=true", "p.tif", "image/tiff")
    assert r.status == 200, r
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(r.json()["preview"]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg is not None
    assert jpeg.shape == (752, 1050, 3)
    assert abs(float(jpeg.mean()) - float(grey16.mean()) / 257) < 2.0  # the same picture, 8-bit
    assert "preview" not in store_server.predict(PLATES[0].read_bytes(), store_server.key("predict")).json()


def test_live_says_what_the_feed_holds(store_server: Server):
    r = store_server.request("GET", "/v1/live", store_server.key("read"))
    assert r.status == 200, r
    live = r.json()
    assert live["namespace"] == "/hades" and live["frames"] == 0 and live["plants"] is None
    # With ROS sourced (as in these tests) the server listens; without it, it says why.
    assert live["message"] == "listening to /hades; no node has published plants there yet" or (
        not live["available"] and "ROS 2 is not present" in live["message"]
    )
    assert store_server.request("GET", "/v1/live", store_server.key("predict")).status == 403
