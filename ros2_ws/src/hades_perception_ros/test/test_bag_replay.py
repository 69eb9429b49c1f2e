"""Bags end to end: `bag make` writes rosbag2 (mcap and sqlite3), `replay` plays one
into the node (its own process) and records every output to a new bag, the report
counts frames, and the outputs come back as prediction files named by source image,
plants and their traits included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rosbags.rosbag2 import Reader

from hades_perception.inference.plants import Plant
from hades_perception.inference.prediction_files import read_predictions
from hades_perception_ros.bag import (
    TYPESTORE,
    make_bag,
    plant_from_msg,
    read_frames,
    read_monitoring,
    register_project_types,
)
from hades_perception_ros.launching import start_node

pytestmark = pytest.mark.ros
NS = f"/replay_{os.getpid()}"
CAMERA = f"{NS}/camera/image_raw"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_make_writes_every_image_with_its_source_and_reads_back(plates_dir: Path, tmp_path: Path, storage: str):
    images = plates_dir / "images"
    n = make_bag(images, tmp_path / "b", rate_hz=2.0, storage=storage, topic=CAMERA, repeat=2)
    frames = list(read_frames(tmp_path / "b"))
    assert n == len(frames) == 4
    assert [f.source for f in frames] == sorted(p.stem for p in images.glob("*.png")) * 2
    assert frames[1].stamp_ns - frames[0].stamp_ns == 500_000_000
    msg: Any = TYPESTORE.deserialize_cdr(frames[0].raw, frames[0].msgtype)
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (752, 1050, "rgb8", "hades_camera")
    with pytest.raises(FileExistsError):
        make_bag(images, tmp_path / "b")


def test_a_plant_goes_through_its_message_and_a_bag_unchanged():
    """messages.plant_msg (rclpy, CDR) read back by rosbags as bag.read_predictions does:
    every trait a robot gets, absent ones (None) included."""
    from rclpy.serialization import serialize_message

    from hades_perception_ros.messages import plant_msg

    register_project_types()
    found = Plant(
        2,
        0.8125,
        False,
        base=(410.5, 120.25),
        primary_root_tip=(415.75, 610.5),
        primary_root_length_px=512.5,
        primary_root_length_mm=24.25,
        total_root_length_px=700.0,
        lateral_root_count=3,
        shoot_area_px=1234.5,
    )
    tip_only = Plant(0, 0.25, True, primary_root_tip=(10.0, 20.0), reason="low confidence")
    missing = Plant(4, 0.0, True, reason="no plant found at this position")
    for p in (found, tip_only, missing):
        raw = serialize_message(plant_msg(p))
        back = plant_from_msg(TYPESTORE.deserialize_cdr(raw, "hades_perception_msgs/msg/Plant"))
        assert back.to_dict() == p.to_dict()


@pytest.fixture(scope="module")
def node(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    params = {
        "model_bundle_path": str(bundle),
        "execution_providers": ["CPUExecutionProvider"],
        "qos_reliability": "reliable",
        "qos_depth": 10,
        "queue_size": 4,
    }
    proc = start_node(params, tmp_path_factory.mktemp("node"), NS, CAMERA)
    yield proc
    proc.terminate()
    proc.wait(10)


def test_replay_plays_into_the_node_records_outputs_and_writes_them_as_prediction_files(
    node: subprocess.Popen[bytes], plates_dir: Path, tmp_path: Path
):
    bag = tmp_path / "plates.bag"
    make_bag(plates_dir / "images", bag, topic=CAMERA, rate_hz=1.0)
    report = tmp_path / "replay.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hades_perception.cli",  # the command a user runs: the core's, with the ROS commands added
            "replay",
            str(bag),
            "--namespace",
            NS,
            "--camera-topic",
            CAMERA,
            "--record",
            str(tmp_path / "out.bag"),
            "--predictions",
            str(tmp_path / "predictions"),
            "--report",
            str(report),
            "--overlays",
            str(tmp_path / "pics"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(report.read_text())
    assert s["frames_in"] == s["frames_out"] == 2 and s["dropped"] == 0
    assert s["latency_ms"]["p50"] > 0 and s["model_versions"] == ["0.0.1-test"]
    assert s["predictions_written"] == 2
    preds = read_predictions(tmp_path / "predictions")
    assert set(preds) == {p.stem for p in (plates_dir / "images").glob("*.png")}
    assert all(p.model["version"] == "0.0.1-test" and p.masks["root"].shape == (752, 1050) for p in preds.values())
    register_project_types()
    frames = list(read_frames(bag))
    sent = {f.stamp_ns for f in frames}
    with Reader(tmp_path / "out.bag") as rec:
        topics = {c.topic for c in rec.connections}
        assert {f"{NS}/masks", f"{NS}/landmarks", f"{NS}/certainty", f"{NS}/plants", f"{NS}/model_info"} <= topics
        stamps: dict[str, set[int]] = {"certainty": set(), "plants": set()}
        plants: dict[int, Any] = {}
        conns = [c for c in rec.connections if c.topic in (f"{NS}/certainty", f"{NS}/plants")]
        for conn, _, raw in rec.messages(connections=conns):
            m: Any = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            stamp = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
            stamps[conn.topic.rsplit("/", 1)[1]].add(stamp)
            if conn.topic.endswith("/plants"):
                assert m.model_version == "0.0.1-test"
                plants[stamp] = m
    assert stamps["certainty"] == stamps["plants"] == sent  # every output pairs with the frame it came from
    # The prediction files' plants are the recorded ones: five, in order, with their traits.
    for f in frames:
        assert f.source is not None
        written = json.loads((tmp_path / "predictions" / f"{f.source}.json").read_text())["plants"]
        assert [p["plant"] for p in written] == [0, 1, 2, 3, 4]
        assert written == [plant_from_msg(p).to_dict() for p in plants[f.stamp_ns].plants]
        assert [p.to_dict() for p in preds[f.source].plants] == written
    assert len(list((tmp_path / "pics").glob("*.png"))) == 2
    # Monitoring signals are recorded per frame and reach the prediction files (hades-train monitor reads either).
    signals = read_monitoring(tmp_path / "out.bag", NS)
    assert len(signals) == 2 and all("input.p50" in s and "area.root" in s for s in signals)
    for f in frames:
        assert (
            json.loads((tmp_path / "predictions" / f"{f.source}.json").read_text())["monitoring"].keys()
            == signals[0].keys()
        )


def test_replay_without_a_node_says_what_to_do(plates_dir: Path, tmp_path: Path):
    bag = tmp_path / "b"
    make_bag(plates_dir / "images", bag, topic="/nobody/listens")
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hades_perception_ros.replay import replay; "
            f"replay(__import__('pathlib').Path('{bag}'), camera_topic='/nobody/listens', "
            "wait_node_s=2)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "no node subscribes to /nobody/listens" in r.stderr
