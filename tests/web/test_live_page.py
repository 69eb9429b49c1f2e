"""The live page shows a running node's latest plants and its shadow candidate's
agreement, as a real node publishes them over DDS (its own process, loopback only, with
a canary in shadow mode from a local store) to the server's live feed; without a node it
says it is listening, and with the feed off it says so."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hades_perception.models.store import ModelStore
from tests.api.conftest import MODEL, PLATES, TINY, Server, _serve
from tests.bundles import NOT_ABOUT_SPEED_MS, new_version
from tests.web.conftest import App, new_app

NS = f"/live_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
SERVED, CANDIDATE = "0.0.1-test", "0.0.2-test"

# A camera of its own process: a real plate, once a second, reliable (the node's default).
CAMERA_PROCESS = """
import sys, time
import cv2, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rgb = cv2.cvtColor(cv2.imread(sys.argv[2]), cv2.COLOR_BGR2RGB)
rclpy.init()
node = rclpy.create_node("test_camera")
pub = node.create_publisher(Image, sys.argv[1], QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3, data=rgb.tobytes())
msg.header.frame_id = "hades_camera"
for i in range(240):
    msg.header.stamp.sec = 1000 + i
    pub.publish(msg)
    rclpy.spin_once(node, timeout_sec=0.5)
"""


@pytest.fixture(scope="module")
def node_and_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    try:
        from hades_perception_ros.launching import start_node, stop
    except ImportError as exc:
        pytest.skip(f"the ROS package is not importable here (source scripts/env.sh): {exc}")
    folder = tmp_path_factory.mktemp("live-node")
    store = ModelStore.open(folder / "store")
    store.publish(TINY)
    store.publish(new_version(folder / "v2", CANDIDATE, src=TINY))
    store.promote(MODEL, SERVED, "production", "served", by="test-setup")
    store.promote(MODEL, CANDIDATE, "canary", "candidate", by="test-setup")
    params: dict[str, object] = {
        "model_bundle_path": str(TINY),
        "execution_providers": ["CPUExecutionProvider"],
        "store_url": store.blobs.describe(),
        "model_name": MODEL,
        "channel": "production",
        "shadow_channel": "canary",
        "cache_dir": str(folder / "cache"),
        "latency_budget_ms": NOT_ABOUT_SPEED_MS,
    }
    node = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    camera = subprocess.Popen([sys.executable, "-c", CAMERA_PROCESS, CAMERA, str(PLATES[0])])
    try:
        yield
    finally:
        camera.terminate()
        camera.wait(10)
        stop(node)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, node_and_camera: None) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("live-server"), "--bundle", str(TINY), "--live-namespace", NS)


def test_a_running_nodes_latest_plants(browser: Any, live_server: Server):
    for app in new_app(browser, live_server, "live_page_with_a_node"):
        app.page.set_default_timeout(120_000)  # the node loads its model, then answers frame by frame
        app.open("#/live").sign_in("read")
        app.page.get_by_test_id("plants").wait_for()
        text = app.page.locator("#content").inner_text()
        assert f"frames received from {NS}" in text
        assert f"model {SERVED}" in text
        assert app.page.get_by_test_id("plants").locator("tbody tr").count() == 5
        agreement = app.page.get_by_test_id("agreement")
        agreement.wait_for()
        assert f"{CANDIDATE} in shadow against {SERVED}" in agreement.inner_text()
        # The same weights under two versions: they agree exactly.
        assert "root: 1.000" in agreement.inner_text()


def test_without_a_node_it_says_it_is_listening(app: App):
    app.open("#/live").sign_in("read")
    message = app.page.get_by_test_id("live-message")
    message.wait_for()
    assert "no node has published plants there yet" in message.inner_text()


def test_with_the_feed_off_it_says_how_to_turn_it_on(browser: Any, tmp_path: Path):
    server = Server(tmp_path, "--bundle", str(TINY), "--live-namespace", "").wait_ready()
    try:
        for app in new_app(browser, server, "live_page_feed_off"):
            app.open("#/live").sign_in("read")
            message = app.page.get_by_test_id("live-message")
            message.wait_for()
            assert "--live-namespace" in message.inner_text()
    finally:
        server.stop()
