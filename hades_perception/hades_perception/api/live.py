"""The latest results of a running perception node, for the web app's live page.

When ROS 2 is present (rclpy and hades_perception_msgs import: the workspace is
sourced) and the server is given a namespace (`--live-namespace`, default /hades, the
launch file's: settings.LIVE_NAMESPACE), the server runs one small rclpy node of its
own, on a thread of its own, that subscribes to the node's `plants`, `monitoring` and
`shadow/agreement` topics and keeps the newest of each (agreement: how far a candidate
in shadow mode agrees with the served model, the running means a person reads before
promoting). `GET /v1/live` answers what it holds, or says plainly why there is
nothing: ROS is not present, the feed is off, or no node has published yet.

This is an adapter at the edge of the core: the import is lazy, so the API runs, and
its tests pass, where there is no ROS. The subscriptions are best effort, depth 1: the
page shows the latest frame, and a slow reader never holds the node back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


def _when() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plant_dict(p: Any) -> dict[str, Any]:
    """A hades_perception_msgs/Plant as the predict JSON's plant (Plant.to_dict)."""
    return {
        "plant": int(p.plant),
        "base": [p.base_x, p.base_y] if p.has_base else None,
        "primary_root_tip": [p.primary_root_tip_x, p.primary_root_tip_y] if p.has_primary_root_tip else None,
        "primary_root_length_px": p.primary_root_length_px if p.has_primary_root_length else None,
        "primary_root_length_mm": p.primary_root_length_mm if p.calibrated and p.has_primary_root_length else None,
        "total_root_length_px": p.total_root_length_px,
        "lateral_root_count": int(p.lateral_root_count),
        "shoot_area_px": p.shoot_area_px,
        "confidence": round(float(p.confidence), 4),
        "low_confidence": bool(p.low_confidence),
        "reason": p.reason,
    }


class LiveFeed:
    """The newest `plants` and `monitoring` messages of one node namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace.rstrip("/") if namespace.strip("/") else ""
        self._lock = threading.Lock()
        self._plants: dict[str, Any] | None = None
        self._monitoring: dict[str, Any] | None = None
        self._agreement: dict[str, Any] | None = None
        self._frames = 0
        self._ros: Any = None
        self._node: Any = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None
        self.reason = ""

    def start(self) -> None:
        if not self.namespace:
            self.reason = "the live feed is off: start the server with --live-namespace NS (a node's namespace)"
            return
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            from rclpy.signals import SignalHandlerOptions

            from hades_perception_msgs.msg import Agreement, Monitoring, PlantArray
        except ImportError as exc:
            self.reason = (
                f"ROS 2 is not present in this server's environment ({exc}); start the server where the "
                "workspace is sourced (source scripts/env.sh) to see a running node"
            )
            log.info("live feed: %s", self.reason)
            return
        self._ros = rclpy.Context()
        # No signal handlers of rclpy's: uvicorn's stop the server on SIGINT and SIGTERM.
        rclpy.init(context=self._ros, signal_handler_options=SignalHandlerOptions.NO)
        self._node = rclpy.create_node("hades_api_live", context=self._ros)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self._node.create_subscription(PlantArray, f"{self.namespace}/plants", self._on_plants, qos)
        self._node.create_subscription(Monitoring, f"{self.namespace}/monitoring", self._on_monitoring, qos)
        self._node.create_subscription(Agreement, f"{self.namespace}/shadow/agreement", self._on_agreement, qos)
        self._executor = SingleThreadedExecutor(context=self._ros)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="live-feed", daemon=True)
        self._thread.start()
        log.info("live feed: listening to %s/plants and %s/monitoring", self.namespace, self.namespace)

    def _spin(self) -> None:
        try:
            while self._ros is not None and self._ros.ok():
                self._executor.spin_once(timeout_sec=0.2)
        except Exception as exc:  # the context was shut down under it: stopping
            log.debug("live feed stopped: %s", exc)

    def stop(self) -> None:
        ros, self._ros = self._ros, None
        if ros is None:
            return
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._executor.shutdown()
        self._node.destroy_node()
        ros.try_shutdown()

    def _on_plants(self, msg: Any) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        doc = {
            "stamp": stamp,
            "frame_id": msg.header.frame_id,
            "model_version": msg.model_version,
            "received_at": _when(),
            "plants": [plant_dict(p) for p in msg.plants],
        }
        with self._lock:
            self._plants = doc
            self._frames += 1

    def _on_monitoring(self, msg: Any) -> None:
        doc = {
            "model": {"name": msg.model_name, "version": msg.model_version},
            "drift_level": ["OK", "WARN", "ERROR"][min(int(msg.drift_level), 2)],
            "drift_message": msg.drift_message,
            "signals": dict(zip(msg.names, (float(v) for v in msg.values), strict=False)),
            "received_at": _when(),
        }
        with self._lock:
            self._monitoring = doc

    def _on_agreement(self, msg: Any) -> None:
        doc = {
            "serving_version": msg.serving_version,
            "candidate_version": msg.candidate_version,
            "frames": int(msg.frames),
            "mean_class_iou": {
                c: round(float(v), 4) for c, v in zip(msg.class_names, msg.mean_class_iou, strict=False)
            },
            "mean_primary_tip_distance_px": round(float(msg.mean_primary_tip_distance_px), 2),
            "received_at": _when(),
        }
        with self._lock:
            self._agreement = doc

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            plants, monitoring, frames, agreement = self._plants, self._monitoring, self._frames, self._agreement
        running = self._ros is not None
        if not running:
            message = self.reason
        elif plants is None:
            message = f"listening to {self.namespace}; no node has published plants there yet"
        else:
            message = f"{frames} frames received from {self.namespace}"
        return {
            "available": running,
            "namespace": self.namespace,
            "message": message,
            "frames": frames,
            "plants": plants,
            "monitoring": monitoring,
            "agreement": agreement,
        }
