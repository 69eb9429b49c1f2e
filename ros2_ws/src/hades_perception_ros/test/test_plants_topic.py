"""With a real model (the shipped default, when this package sits in the repository),
a full-size frame gives five plants on the `plants` topic, each with its primary tip,
the same point as its primary_root_tip landmark, and a root length in px and mm."""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from conftest import REPO
from harness import Probe, image_msg

from hades_perception_ros.launching import start_node, stop

pytestmark = pytest.mark.ros
NS = f"/plants_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
SHIPPED = REPO / "models" / "hades-seedlings"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    if not (SHIPPED / "manifest.json").is_file():
        pytest.skip(f"{SHIPPED}: the shipped model is not beside this package")
    folder = tmp_path_factory.mktemp("node")
    params: dict[str, object] = {"model_bundle_path": str(SHIPPED), "execution_providers": ["CPUExecutionProvider"]}
    proc = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    p = Probe(NS, CAMERA)
    p.wait("model_info", timeout=90)
    p.wait_for_subscriber()
    yield p
    p.close()
    stop(proc)


def test_a_full_frame_gives_five_plants_whose_tips_are_their_landmarks(probe: Probe, plate: np.ndarray):
    full = cv2.resize(plate, (4200, 3008), interpolation=cv2.INTER_CUBIC)  # the quarter-size test plate, full size
    probe.image_pub.publish(image_msg(full, 42))
    plants = probe.wait("plants", lambda m: m.header.stamp.sec == 42, timeout=120)
    marks = probe.wait("landmarks", lambda m: m.header.stamp.sec == 42)
    assert plants.model_version == marks.model_version != ""
    assert [p.plant for p in plants.plants] == [0, 1, 2, 3, 4]
    tips = {lm.plant: (lm.x, lm.y) for lm in marks.landmarks if lm.kind == "primary_root_tip"}
    for p in plants.plants:
        assert p.has_primary_root_tip and p.has_base, p.reason
        assert (p.primary_root_tip_x, p.primary_root_tip_y) == pytest.approx(tips[p.plant])
        assert p.primary_root_tip_y > p.base_y  # roots grow down
        assert p.has_primary_root_length and p.primary_root_length_px > 100
        assert p.calibrated and p.primary_root_length_mm == pytest.approx(p.primary_root_length_px / 23.3, rel=0.2)
    xs = [p.base_x for p in plants.plants]
    assert xs == sorted(xs)
