"""Shadow mode: a candidate channel's version runs beside the serving one on the same
frames, publishes under shadow/, and says how far it agrees (shadow/agreement).

The candidate never delays the serving model: it has its own worker that keeps only
the newest frame. Its golden passes run between serving frames (its slot shares the
serving worker's gaps), as a serving candidate's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import Header

from hades_perception.inference import agreement
from hades_perception.inference.prediction import Prediction
from hades_perception.models.follower import ModelFollower
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import InferenceWorker
from hades_perception_msgs.msg import Agreement, ModelInfo
from hades_perception_ros.messages import LATCHED, Outputs, model_info


@dataclass
class ShadowFrame:
    header: Header
    image: np.ndarray
    serving: Prediction
    serving_version: str


class Shadow:
    def __init__(self, node: Node, slot: ServingSlot, follower: ModelFollower) -> None:
        """`slot`: the candidate's own slot; `follower`: follows the shadow channel into it."""
        self.node, self.slot, self.follower = node, slot, follower
        self.tally = agreement.Tally()
        self.worker: InferenceWorker[ShadowFrame] = InferenceWorker(self._process, size=1, on_error=self._failed)
        self.outputs: Outputs | None = None
        self.pub_agreement: Any = None
        self.pub_info: Any = None
        # A candidate installed on the follower's thread is announced on the executor's.
        self._installed = node.create_guard_condition(self.publish_info)
        slot.add_listener(lambda _new, _old, _attempt: self._installed.trigger())

    def activate(self, qos: QoSProfile) -> None:
        self.outputs = Outputs(self.node, "shadow/", qos)
        self.pub_agreement = self.node.create_publisher(Agreement, "shadow/agreement", qos)
        self.pub_info = self.node.create_publisher(ModelInfo, "shadow/model_info", LATCHED)
        self.publish_info()

    def deactivate(self) -> None:
        outputs, self.outputs = self.outputs, None
        self.worker.idle(timeout=30.0)
        if outputs is not None:
            outputs.destroy()
            self.node.destroy_publisher(self.pub_agreement)
            self.node.destroy_publisher(self.pub_info)

    def submit(self, frame: ShadowFrame) -> None:
        self.worker.submit(frame)

    def publish_info(self) -> None:
        if self.pub_info is None or not self.slot.serving:
            return
        st = self.follower.status
        stamp = self.node.get_clock().now().to_msg()
        self.pub_info.publish(model_info(self.slot.pipeline, self.slot.loaded_at, stamp, st.store, st.channel, ""))
        self.node.get_logger().info(f"shadow candidate {self.slot.version} ready")

    def close(self) -> None:
        self.follower.stop(timeout=5.0)
        self.worker.close()
        self.node.destroy_guard_condition(self._installed)

    def _failed(self, item: ShadowFrame, exc: Exception) -> None:
        self.node.get_logger().warning(f"shadow candidate failed on frame {item.header.stamp.sec}: {exc}")

    def _process(self, item: ShadowFrame) -> None:
        outputs = self.outputs
        if outputs is None or not self.slot.serving or self.slot.version == item.serving_version:
            return  # inactive, no candidate yet, or the candidate is what is serving
        candidate = self.slot.pipeline
        pred = candidate(item.image)
        m = candidate.manifest
        outputs.publish(item.header, pred, m.name, m.version)
        outputs.publish_masks(item.header, pred, m.version)
        a = agreement.compare(item.serving, pred)
        self.tally.add(item.serving_version, m.version, a)
        mean = self.tally.mean_iou()
        self.pub_agreement.publish(
            Agreement(
                header=item.header,
                serving_version=item.serving_version,
                candidate_version=m.version,
                class_names=list(a.classes),
                class_iou=a.class_iou,
                class_certainty_difference=a.class_certainty_difference,
                primary_tip_distance_px=a.primary_tip_distance_px,
                primary_tips_unmatched=a.primary_tips_unmatched,
                plant_certainty_difference=a.plant_certainty_difference,
                frames=self.tally.frames,
                mean_class_iou=[mean.get(c, 0.0) for c in a.classes],
                mean_primary_tip_distance_px=self.tally.mean_tip_distance_px(),
            )
        )
