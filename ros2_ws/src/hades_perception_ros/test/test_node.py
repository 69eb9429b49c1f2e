"""The perception node in its own process, talking over DDS (loopback only, this
run's own domain) with a real publisher and subscriber in the test process.

Covers: outputs carry the input header and model version; the plants message holds
every expected plant in order, agreeing with landmarks and certainty; bad frames (unknown
encoding, step/size mismatch, truncated data, zero size, a 12000x9000 frame, a
corrupt compressed image) each give a diagnostic and a log line while the node
stays up and processes the next good frame; a burst at 10x the sustainable rate
is absorbed by dropping (counted) with bounded memory, and the newest frame's masks
still go out (from the image worker); the viewing topics carry the
images of the masks message; a parameter out of range
stops the node at start with that reason.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import Probe, image_msg

from hades_perception_ros.launching import start_node, stop

pytestmark = pytest.mark.ros

NS = f"/test_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"
COMPRESSED = f"{NS}/camera/image_raw/compressed"
CLASSES = ("root", "shoot", "seed", "occluded_root")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def node(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    folder = tmp_path_factory.mktemp("node")
    params = {
        "model_bundle_path": str(bundle),
        "execution_providers": ["CPUExecutionProvider"],
        "compressed_topic": "camera/image_raw/compressed",
        "diagnostics_period": 0.5,
        "max_image_pixels": 64_000_000,
        "viewing_rate_hz": 0.0,  # every frame: the tests compare each frame's images
    }
    proc = start_node(params, folder, NS, CAMERA, log=folder / "node.log")
    proc.log_path = folder / "node.log"  # type: ignore[attr-defined]
    yield proc
    stop(proc)


@pytest.fixture(scope="module")
def probe(node: subprocess.Popen[bytes]) -> Iterator[Probe]:
    p = Probe(NS, CAMERA, COMPRESSED, viewing=CLASSES)
    p.wait("model_info", timeout=90)
    p.wait_for_subscriber()
    yield p
    p.close()


def _sent_and_answered(probe: Probe, plate: np.ndarray, stamp: int, encoding: str = "rgb8") -> None:
    img = plate if encoding == "rgb8" else cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY)
    probe.image_pub.publish(image_msg(img, stamp, encoding))
    probe.wait("certainty", lambda m: m.header.stamp.sec == stamp)


def test_outputs_carry_the_input_header_and_the_model_version(probe: Probe, plate: np.ndarray):
    info = probe.wait("model_info")
    assert info.version == "0.0.1-test" and "onnxruntime" in info.engine
    assert tuple(info.class_names) == CLASSES
    probe.image_pub.publish(image_msg(plate, 1001))
    cert = probe.wait("certainty", lambda m: m.header.stamp.sec == 1001)
    masks = probe.wait("masks", lambda m: m.header.stamp.sec == 1001)
    marks = probe.wait("landmarks", lambda m: m.header.stamp.sec == 1001)
    plants = probe.wait("plants", lambda m: m.header.stamp.sec == 1001)
    for msg in (cert, masks, marks, plants):
        assert msg.header.frame_id == "hades_camera" and msg.model_version == info.version
    assert [(im.height, im.width, im.encoding) for im in masks.masks] == [(752, 1050, "mono8")] * 4
    assert masks.confidence.height == 752 and len(cert.plant_confidence) == 5


def test_the_plants_message_holds_every_plant_in_order_and_agrees_with_landmarks_and_certainty(
    probe: Probe, plate: np.ndarray
):
    info = probe.wait("model_info")
    probe.image_pub.publish(image_msg(plate, 1010))
    cert = probe.wait("certainty", lambda m: m.header.stamp.sec == 1010)
    marks = probe.wait("landmarks", lambda m: m.header.stamp.sec == 1010)
    msg = probe.wait("plants", lambda m: m.header.stamp.sec == 1010)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1010, 0, "hades_camera")
    assert msg.model_version == info.version
    assert [p.plant for p in msg.plants] == [0, 1, 2, 3, 4]  # one per expected plant, left to right
    tips = {lm.plant: lm for lm in marks.landmarks if lm.kind == "primary_root_tip"}
    assert set(tips) == {p.plant for p in msg.plants if p.has_primary_root_tip}
    for p in msg.plants:
        assert list(cert.plant_confidence)[p.plant] == pytest.approx(p.confidence)
        assert list(cert.plant_low_confidence)[p.plant] == p.low_confidence
        assert p.total_root_length_px >= 0 and p.lateral_root_count >= 0 and p.shoot_area_px >= 0
        if p.has_primary_root_tip:  # the same point as the landmark (float32 there)
            tip = tips[p.plant]
            assert (tip.x, tip.y) == pytest.approx((p.primary_root_tip_x, p.primary_root_tip_y), abs=1e-3)
            assert tip.confidence == pytest.approx(p.confidence)
            if p.has_primary_root_length:
                assert p.primary_root_length_px > 0 and p.calibrated == tip.calibrated
        else:  # not found: flagged, with the reason, and nothing measured
            assert p.low_confidence and p.reason
            assert not (p.has_primary_root_length or p.calibrated)
            assert p.primary_root_tip_x == p.primary_root_tip_y == 0.0
        if p.calibrated:
            assert p.has_primary_root_length and p.primary_root_length_mm > 0


def test_the_viewing_topics_carry_the_images_of_the_masks_message_with_the_same_stamp(probe: Probe, plate: np.ndarray):
    probe.image_pub.publish(image_msg(plate, 1002))
    masks = probe.wait("masks", lambda m: m.header.stamp.sec == 1002)
    for cls, want in zip(CLASSES, masks.masks, strict=True):
        got = probe.wait(f"masks/{cls}", lambda m: m.header.stamp.sec == 1002)
        assert (got.encoding, got.height, got.width) == ("mono8", 752, 1050)
        assert bytes(got.data) == bytes(want.data), cls
    confidence = probe.wait("confidence", lambda m: m.header.stamp.sec == 1002)
    assert bytes(confidence.data) == bytes(masks.confidence.data)


def test_grey_frames_and_compressed_frames_are_served(probe: Probe, plate: np.ndarray):
    from sensor_msgs.msg import CompressedImage

    _sent_and_answered(probe, plate, 1002, "mono8")
    _ok, png = cv2.imencode(".png", cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format="png", data=png.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = 1003, "hades_camera"
    probe.compressed_pub.publish(msg)
    probe.wait("certainty", lambda m: m.header.stamp.sec == 1003)


def _bad_frames():
    from sensor_msgs.msg import CompressedImage, Image

    small = np.zeros((20, 30, 3), np.uint8)
    unknown = image_msg(small, 2001, encoding="yuv422_weird")
    mismatch = image_msg(small, 2002)
    mismatch.step = 10  # shorter than a row
    truncated = image_msg(small, 2003)
    truncated.data = truncated.data[:100]
    zero = Image(height=0, width=0, encoding="rgb8", step=0)
    zero.header.stamp.sec = 2004
    huge = Image(height=9000, width=12000, encoding="mono8", step=12000, data=b"\0" * 1000)
    huge.header.stamp.sec = 2005
    _ok, png = cv2.imencode(".png", np.zeros((9000, 12000), np.uint8))
    huge_png = CompressedImage(format="png", data=png.tobytes())
    huge_png.header.stamp.sec = 2006
    corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    corrupt.header.stamp.sec = 2007
    return [
        ("unknown encoding", unknown, "unsupported image encoding"),
        ("step/size mismatch", mismatch, "smaller than a row"),
        ("truncated data", truncated, "truncated image"),
        ("zero size", zero, "zero-size image"),
        ("12000x9000 frame", huge, "exceeds the"),
        ("12000x9000 compressed frame", huge_png, "exceeds the"),
        ("corrupt compressed image", corrupt, "cannot be decoded"),
    ]


@pytest.mark.parametrize(("case", "index"), [(c[0], i) for i, c in enumerate(_bad_frames())])
def test_a_bad_frame_is_reported_and_the_next_good_frame_is_served(
    probe: Probe, node: subprocess.Popen[bytes], plate: np.ndarray, case: str, index: int
):
    from sensor_msgs.msg import CompressedImage

    _, msg, expected = _bad_frames()[index]
    errors_before = int(probe.diag("errors") or 0)
    (probe.compressed_pub if isinstance(msg, CompressedImage) else probe.image_pub).publish(msg)
    deadline = time.monotonic() + 30
    while int(probe.diag("errors") or 0) <= errors_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert int(probe.diag("errors") or 0) > errors_before, f"{case}: no error counted in /diagnostics"
    log = Path(node.log_path).read_text()  # type: ignore[attr-defined]
    assert expected in log, f"{case}: no log line saying {expected!r}"
    assert node.poll() is None, f"the node died on {case}"
    _sent_and_answered(probe, plate, 3000 + index)


def test_a_burst_at_ten_times_the_sustainable_rate_drops_frames_keeps_memory_and_recovers(
    probe: Probe, node: subprocess.Popen[bytes], plate: np.ndarray
):
    t0 = time.monotonic()
    _sent_and_answered(probe, plate, 4000)
    per_frame = time.monotonic() - t0
    rss_before = _rss_mb(node.pid)
    dropped_before = int(probe.diag("dropped") or 0)
    n = 30
    for i in range(n):  # ten times faster than one frame per per_frame
        probe.image_pub.publish(image_msg(plate, 5000 + i))
        time.sleep(per_frame / 10)
    probe.wait("certainty", lambda m: m.header.stamp.sec == 5000 + n - 1, timeout=120)  # the newest is served
    # ...and its masks, from the image worker, which keeps the newest frame's too
    probe.wait("masks", lambda m: m.header.stamp.sec == 5000 + n - 1, timeout=60)
    time.sleep(1.5)
    dropped = int(probe.diag("dropped") or 0) - dropped_before
    assert dropped > 0, "a burst must be absorbed by dropping"
    assert probe.diag("images_dropped") is not None and probe.diag("images_p50_ms") is not None
    with probe.lock:
        answered = {m.header.stamp.sec for m in probe.got["certainty"] if 5000 <= m.header.stamp.sec < 5000 + n}
    assert len(answered) < n  # most of the burst is not served...
    assert _rss_mb(node.pid) < rss_before + 300, "memory grew during the burst"
    _sent_and_answered(probe, plate, 6000)


def test_a_parameter_out_of_range_stops_the_node_at_start_with_that_reason_alone(bundle: Path, tmp_path: Path):
    params = {"model_bundle_path": str(bundle), "queue_size": 10_000}
    proc = start_node(params, tmp_path, f"{NS}_bad", f"{NS}_bad/camera/image_raw", log=tmp_path / "node.log")
    try:
        proc.wait(90)
    finally:
        stop(proc)
    log = (tmp_path / "node.log").read_text()
    assert proc.returncode != 0
    assert "queue_size out of range" in log
    # Shutting down a node whose start failed stops only what was started.
    assert "During handling of the above exception" not in log, log[-2000:]
