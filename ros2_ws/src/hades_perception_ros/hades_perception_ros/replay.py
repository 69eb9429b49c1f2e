"""`hades-perception replay`: play a bag into a running node, record what it says.

Frames are published as the bag stores them (raw CDR, no re-encoding), either at
the bag's rate or as fast as the node keeps up (the next frame goes out when the
node has answered the previous one, or after a timeout). Every output topic is
recorded raw to a new bag. The report counts frames in and out, drops, latency
percentiles (publish to certainty received). With `predictions`, the recorded
outputs are also written as prediction files (<stem>.json and mask PNGs, as
`hades-perception predict` writes them), which `hades-train score` scores against the
dataset the bag was made from: evaluation stays with training, and this side needs
no training code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from hades_perception_msgs.msg import Certainty
from hades_perception_ros.bag import BagRecorder, read_frames, register_project_types

log = logging.getLogger(__name__)

OUTPUTS = {  # relative to the node's namespace -> type name in the bag
    "masks": "hades_perception_msgs/msg/SegmentationMasks",
    "landmarks": "hades_perception_msgs/msg/LandmarkArray",
    "certainty": "hades_perception_msgs/msg/Certainty",
    "plants": "hades_perception_msgs/msg/PlantArray",
    "monitoring": "hades_perception_msgs/msg/Monitoring",
    "model_info": "hades_perception_msgs/msg/ModelInfo",
}


@dataclass
class ReplayReport:
    frames_in: int = 0
    frames_out: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=dict)
    model_versions: list[str] = field(default_factory=list)
    predictions: int = 0  # frames written as prediction files
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.frames_in - self.frames_out,
            "latency_ms": None
            if lat is None
            else {
                "p50": float(np.percentile(lat, 50)),
                "p90": float(np.percentile(lat, 90)),
                "p99": float(np.percentile(lat, 99)),
                "max": float(lat.max()),
            },
            "throughput_hz": self.frames_out / self.wall_s if self.wall_s else None,
            "recorded_messages": self.recorded,
            "model_versions": sorted(set(self.model_versions)),
            "predictions_written": self.predictions,
        }


class Replayer(Node):
    def __init__(self, namespace: str, camera_topic: str, msgtype: str, recorder: BagRecorder | None) -> None:
        super().__init__("hades_replay")
        self.ns = namespace.rstrip("/") if namespace.startswith("/") else f"/{namespace.rstrip('/')}"
        from sensor_msgs.msg import CompressedImage, Image

        cls = CompressedImage if msgtype.endswith("CompressedImage") else Image
        self.pub = self.create_publisher(
            cls, camera_topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.recorder = recorder
        self.sent: dict[int, float] = {}  # stamp ns -> monotonic send time
        self.answered: dict[int, float] = {}
        self.versions: list[str] = []
        self.cv = threading.Condition()
        out_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        from hades_perception_msgs.msg import LandmarkArray, ModelInfo, Monitoring, PlantArray, SegmentationMasks

        types = {
            "masks": SegmentationMasks,
            "landmarks": LandmarkArray,
            "certainty": Certainty,
            "plants": PlantArray,
            "monitoring": Monitoring,
            "model_info": ModelInfo,
        }
        for name, t in types.items():
            topic = f"{self.ns}/{name}"
            self.create_subscription(
                t,
                topic,
                lambda raw, topic=topic: self._on_output(topic, raw),
                latched if name == "model_info" else out_qos,
                raw=True,
            )

    def _on_output(self, topic: str, raw: bytes) -> None:
        now_ns = time.time_ns()
        if self.recorder is not None:
            self.recorder.write(topic, now_ns, raw)
        if topic.endswith("/certainty"):
            msg = deserialize_message(raw, Certainty)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self.cv:
                self.answered[stamp] = time.monotonic()
                self.versions.append(msg.model_version)
                self.cv.notify_all()

    def wait_for_subscriber(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pub.get_subscription_count() > 0:
                return True
            time.sleep(0.1)
        return False

    def send(self, stamp_ns: int, raw: bytes) -> None:
        with self.cv:
            self.sent[stamp_ns] = time.monotonic()
        self.pub.publish(raw)

    def wait_answer(self, stamp_ns: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cv:
            while stamp_ns not in self.answered:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True


def replay(
    bag: Path,
    *,
    namespace: str = "hades",
    camera_topic: str = "/hades/camera/image_raw",
    record: Path | None = None,
    mode: str = "keep-up",
    timeout_s: float = 60.0,
    wait_node_s: float = 60.0,
    predictions: Path | None = None,
    storage: str = "mcap",
) -> ReplayReport:
    """Play `bag` into the node under `namespace`; record its outputs to `record`, and
    write them as prediction files into `predictions` (needs `record`)."""
    if mode not in ("keep-up", "bag-rate"):
        raise ValueError(f"mode must be keep-up or bag-rate, got {mode!r}")
    register_project_types()
    frames = list(read_frames(bag))
    if not frames:
        raise ValueError(f"{bag}: no camera frames")
    ns = namespace if namespace.startswith("/") else f"/{namespace}"
    recorder = BagRecorder(record, {f"{ns}/{k}": v for k, v in OUTPUTS.items()}, storage) if record else None
    rclpy.init()
    node = Replayer(namespace, camera_topic, frames[0].msgtype, recorder)
    spinner = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spinner.start()
    report = ReplayReport()
    try:
        if not node.wait_for_subscriber(wait_node_s):
            raise RuntimeError(
                f"no node subscribes to {camera_topic} after {wait_node_s:.0f} s: start it first "
                "(hades-perception run), and check ROS_DOMAIN_ID"
            )
        time.sleep(2.0)  # discovery settles on both sides (our output readers, its shared-memory ports)
        t0 = time.monotonic()
        first = frames[0].stamp_ns
        for f in frames:
            if mode == "bag-rate":
                delay = (f.stamp_ns - first) / 1e9 - (time.monotonic() - t0)
                if delay > 0:
                    time.sleep(delay)
            node.send(f.stamp_ns, f.raw)
            report.frames_in += 1
            if mode == "keep-up" and not node.wait_answer(f.stamp_ns, timeout_s):
                log.warning("no answer for frame %d within %.0f s", f.stamp_ns, timeout_s)
        # Wait for the last answers.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(node.answered) < len(node.sent):
            time.sleep(0.1)
        time.sleep(0.5)
        report.wall_s = time.monotonic() - t0
        with node.cv:
            report.frames_out = len(node.answered)
            report.latencies_ms = [(node.answered[s] - node.sent[s]) * 1e3 for s in node.answered if s in node.sent]
            report.model_versions = list(node.versions)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        spinner.join(timeout=5)
        if recorder is not None:
            recorder.close()
            report.recorded = dict(recorder.count)
    if predictions is not None and record is not None:
        report.predictions = write_prediction_files(record, predictions, {f.stamp_ns: f.source for f in frames}, ns)
    return report


def write_prediction_files(recording: Path, out: Path, stems: dict[int, str | None], ns: str) -> int:
    """The recorded outputs as prediction files, named by each frame's source image
    (by its stamp when the bag does not say); returns how many were written."""
    from hades_perception.inference.prediction_files import write_prediction
    from hades_perception_ros.bag import read_predictions

    n = 0
    for stamp, pred in read_predictions(recording, ns).items():
        write_prediction(out, stems.get(stamp) or f"frame_{stamp}", pred)
        n += 1
    return n


def write_report(report: ReplayReport, path: Path) -> dict[str, Any]:
    s = report.summary()
    path.write_text(json.dumps(s, indent=1))
    return s


def overlays_from_recording(recording: Path, bag: Path, out: Path, ns: str = "/hades", limit: int = 6) -> list[Path]:
    """Pictures of what the node published: its masks and landmarks over the input
    frame with the same stamp, beside its confidence image."""
    import cv2

    from hades_perception.inference.overlay import prediction_picture
    from hades_perception_ros.bag import TYPESTORE, read_predictions
    from hades_perception_ros.image_codec import decode_compressed, decode_image

    register_project_types()
    inputs: dict[int, np.ndarray] = {}
    for f in read_frames(bag):
        msg: Any = TYPESTORE.deserialize_cdr(f.raw, f.msgtype)
        inputs[f.stamp_ns] = (
            decode_compressed(msg.format, msg.data.tobytes())
            if f.msgtype.endswith("Compressed")
            else decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data.tobytes())
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stamp, pred in sorted(read_predictions(recording, ns).items())[:limit]:
        if stamp not in inputs:
            continue
        path = out / f"frame_{stamp}.png"
        cv2.imwrite(str(path), prediction_picture(inputs[stamp], pred))
        written.append(path)
    return written
