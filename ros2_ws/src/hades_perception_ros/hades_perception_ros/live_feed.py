"""The ROS side of the HTTP API's live feed (hades_perception/api/live.py): a small rclpy
node, on a context and a thread of its own inside the API's process, that subscribes to
one perception node's `plants`, `monitoring` and `shadow/agreement` topics and hands
each newest message on as the predict JSON's dicts. Best effort, depth 1: the page shows
the latest frame, and a slow reader never holds the node back.

It lives here, not in the core, because it is the one part of the API that speaks ROS:
the core imports it only where this package is installed (the workspace sourced)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from hades_perception_msgs.msg import Agreement, Monitoring, PlantArray

log = logging.getLogger(__name__)
Sink = Callable[[dict[str, Any]], None]
LEVELS = ("OK", "WARN", "ERROR")


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


def plants_doc(msg: Any) -> dict[str, Any]:
    return {
        "stamp": msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
        "frame_id": msg.header.frame_id,
        "model_version": msg.model_version,
        "received_at": _when(),
        "plants": [plant_dict(p) for p in msg.plants],
    }


def monitoring_doc(msg: Any) -> dict[str, Any]:
    return {
        "model": {"name": msg.model_name, "version": msg.model_version},
        "drift_level": LEVELS[min(int(msg.drift_level), 2)],
        "drift_message": msg.drift_message,
        "signals": dict(zip(msg.names, (float(v) for v in msg.values), strict=False)),
        "received_at": _when(),
    }


def agreement_doc(msg: Any) -> dict[str, Any]:
    return {
        "serving_version": msg.serving_version,
        "candidate_version": msg.candidate_version,
        "frames": int(msg.frames),
        "mean_class_iou": {c: round(float(v), 4) for c, v in zip(msg.class_names, msg.mean_class_iou, strict=False)},
        "mean_primary_tip_distance_px": round(float(msg.mean_primary_tip_distance_px), 2),
        "received_at": _when(),
    }


class NodeSubscriber:
    """Subscribed from construction until stop()."""

    def __init__(self, namespace: str, on_plants: Sink, on_monitoring: Sink, on_agreement: Sink) -> None:
        self._ctx = rclpy.Context()
        # No signal handlers of rclpy's: the API's server stops on SIGINT and SIGTERM.
        rclpy.init(context=self._ctx, signal_handler_options=SignalHandlerOptions.NO)
        self._node = rclpy.create_node("hades_api_live", context=self._ctx)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        subscriptions: list[tuple[Any, str, Callable[[Any], dict[str, Any]], Sink]] = [
            (PlantArray, "plants", plants_doc, on_plants),
            (Monitoring, "monitoring", monitoring_doc, on_monitoring),
            (Agreement, "shadow/agreement", agreement_doc, on_agreement),
        ]
        for msg_type, topic, doc, sink in subscriptions:
            self._node.create_subscription(msg_type, f"{namespace}/{topic}", lambda m, d=doc, s=sink: s(d(m)), qos)
        self._executor = SingleThreadedExecutor(context=self._ctx)
        self._executor.add_node(self._node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="live-feed", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self._running and self._ctx.ok():
                self._executor.spin_once(timeout_sec=0.2)
        except Exception as exc:  # the context was shut down under it: stopping
            log.debug("live feed stopped: %s", exc)

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown()
        self._node.destroy_node()
        self._ctx.try_shutdown()
