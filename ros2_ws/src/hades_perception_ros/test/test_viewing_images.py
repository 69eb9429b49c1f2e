"""viewing_downsample, over DDS with the node in its own process (loopback only, this
run's own domain): the viewing topics carry images at 1/N of the frame each way, made
from the masks message's own, which stays full size for the robot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import Probe, image_msg

from hades_perception_ros.launching import start_node, stop

pytestmark = pytest.mark.ros

NS = f"/test_view_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
CLASSES = ("root", "shoot", "seed", "occluded_root")


@pytest.fixture(scope="module")
def probe(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    folder = tmp_path_factory.mktemp("viewing")
    params = {
        "model_bundle_path": str(bundle),
        "execution_providers": ["CPUExecutionProvider"],
        "viewing_rate_hz": 0.0,  # every frame
        "viewing_downsample": 4,
    }
    node = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    p = Probe(NS, CAMERA, viewing=CLASSES)
    try:
        p.wait("model_info", timeout=90)
        p.wait_for_subscriber()
        yield p
    finally:
        p.close()
        stop(node)


def test_the_viewing_images_are_a_quarter_size_each_way_and_the_masks_message_full_size(
    probe: Probe, plate: np.ndarray
):
    probe.image_pub.publish(image_msg(plate, 3001))
    masks = probe.wait("masks", lambda m: m.header.stamp.sec == 3001)
    assert [(im.height, im.width) for im in masks.masks] == [(752, 1050)] * 4
    for cls, full in zip(CLASSES, masks.masks, strict=True):
        view = probe.wait(f"masks/{cls}", lambda m: m.header.stamp.sec == 3001)
        assert (view.encoding, view.height, view.width) == ("mono8", 188, 262), cls
        got = np.frombuffer(bytes(view.data), np.uint8).reshape(188, 262)
        # A class shows in a viewing pixel where any of its 4 x 4 pixels has it.
        blocks = np.frombuffer(bytes(full.data), np.uint8).reshape(752, 1050)[:752, :1048].reshape(188, 4, 262, 4)
        assert np.array_equal(got > 0, blocks.max(axis=(1, 3)) > 0), cls
    confidence = probe.wait("confidence", lambda m: m.header.stamp.sec == 3001)
    assert (confidence.height, confidence.width) == (188, 262)
    want = cv2.resize(
        np.frombuffer(bytes(masks.confidence.data), np.uint8).reshape(752, 1050)[:, :1048],
        (262, 188),
        interpolation=cv2.INTER_AREA,
    )
    assert np.array_equal(np.frombuffer(bytes(confidence.data), np.uint8).reshape(188, 262), want)
