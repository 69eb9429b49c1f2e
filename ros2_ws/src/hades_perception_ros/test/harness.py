"""The robot's side of a node test: a probe node that publishes camera frames and
records every output of one perception node namespace."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

OUTPUTS = ("masks", "landmarks", "certainty", "plants")


def image_msg(rgb: np.ndarray, stamp: int, encoding: str = "rgb8", frame_id: str = "hades_camera") -> Any:
    from sensor_msgs.msg import Image

    msg = Image(
        height=rgb.shape[0],
        width=rgb.shape[1],
        encoding=encoding,
        step=rgb.shape[1] * (1 if rgb.ndim == 2 else 3),
        data=rgb.tobytes(),
    )
    msg.header.stamp.sec, msg.header.frame_id = stamp, frame_id
    return msg


class Probe:
    """Publishes frames to `camera` (and `compressed`), listens to every output under `ns`."""

    def __init__(
        self, ns: str, camera: str, compressed: str = "", shadow: bool = False, viewing: tuple[str, ...] = ()
    ) -> None:
        """`viewing`: class names whose masks/<class> viewing topics (and `confidence`) to listen to too."""
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from hades_perception_msgs.msg import (
            Agreement,
            Certainty,
            LandmarkArray,
            ModelInfo,
            Monitoring,
            PlantArray,
            SegmentationMasks,
        )

        self.ns = ns
        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node("probe")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.image_pub = self.node.create_publisher(Image, camera, reliable)
        self.compressed_pub = self.node.create_publisher(
            CompressedImage, compressed or camera + "/compressed", reliable
        )
        self.got: dict[str, list[Any]] = {}
        self.lock = threading.Lock()
        topics: list[tuple[str, Any]] = [
            ("masks", SegmentationMasks),
            ("landmarks", LandmarkArray),
            ("certainty", Certainty),
            ("plants", PlantArray),
            ("monitoring", Monitoring),
        ]
        if shadow:
            topics += [(f"shadow/{n}", t) for n, t in topics] + [("shadow/agreement", Agreement)]
        if viewing:
            topics += [(f"masks/{c}", Image) for c in viewing] + [("confidence", Image)]
        for name, t in topics:
            self.got[name] = []
            self.node.create_subscription(t, f"{ns}/{name}", lambda m, n=name: self._add(n, m), reliable)
        for name in ("model_info", *(["shadow/model_info"] if shadow else [])):
            self.got[name] = []
            self.node.create_subscription(ModelInfo, f"{ns}/{name}", lambda m, n=name: self._add(n, m), latched)
        self.got["diagnostics"] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self._add("diagnostics", m), 10)
        # Its own executor, so that close() can stop the spinning before the node goes:
        # destroying a node that rclpy.spin still waits on once left the spin thread busy
        # (and holding the GIL) while the test's teardown waited on it.
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()

    def _add(self, name: str, msg: object) -> None:
        with self.lock:
            self.got[name].append(msg)

    def wait(self, name: str, pred: Callable[[Any], bool] = lambda m: True, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                hits = [m for m in self.got[name] if pred(m)]
            if hits:
                return hits[-1]
            time.sleep(0.05)
        raise AssertionError(f"no matching {name} message within {timeout} s")

    def messages(self, name: str) -> list[Any]:
        with self.lock:
            return list(self.got[name])

    def diag(self, key: str, status: str = "") -> str | None:
        """The latest value of `key` in this node's diagnostics (in the status whose name contains `status`)."""
        for arr in reversed(self.messages("diagnostics")):
            for st in arr.status:
                if self.ns in st.hardware_id and status in st.name:
                    for kv in st.values:
                        if kv.key == key:
                            return str(kv.value)
        return None

    def wait_for_subscriber(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        """Stop spinning, then destroy the node and shut rclpy down, in that order."""
        self.executor.shutdown(timeout_sec=10.0)
        self.spinner.join(timeout=10.0)
        self.node.destroy_node()
        self.rclpy.shutdown()
