"""The ROS 2 adapter: Hades camera frames in; masks, landmarks, certainty out.

Thin on purpose: parameters come from params.PARAMS, frames are handed to an
InferenceWorker (the executor never waits for inference), and the worker turns
the pipeline's Prediction into messages stamped with the input header. All the
logic lives in the pure modules (pipeline, image_codec, worker).

Topics, relative to the node's namespace:
  in   image_raw (sensor_msgs/Image), optionally a CompressedImage topic
  out  masks (hades_perception_msgs/SegmentationMasks: every class + confidence, with model version)
       landmarks (hades_perception_msgs/LandmarkArray), certainty (hades_perception_msgs/Certainty)
       masks/<class> (mono8), masks/colour (rgb8), confidence (mono8): for viewing, published
           only while someone subscribes; their model version is the one in `masks` with the same stamp
       model_info (hades_perception_msgs/ModelInfo, transient local), /diagnostics
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from hades_perception.image_codec import decode_compressed, decode_image
from hades_perception.overlay import class_colour
from hades_perception.params import PARAMS
from hades_perception.pipeline import InputError, Pipeline
from hades_perception.prediction import Prediction
from hades_perception.worker import InferenceWorker
from hades_perception_msgs.msg import Certainty, Landmark, LandmarkArray, ModelInfo, SegmentationMasks


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at the callback
    received_wall: float  # time.time() at the callback, to compare with the header stamp


def _mono8(header: Header, mask: np.ndarray) -> Image:
    h, w = mask.shape
    return Image(
        header=header,
        height=h,
        width=w,
        encoding="mono8",
        step=w,
        data=(mask.view(np.uint8) * 255 if mask.dtype == bool else mask).tobytes(),
    )


class PerceptionNode(Node):
    pipeline: Pipeline
    worker: InferenceWorker[Frame]
    pub_masks: Publisher
    pub_landmarks: Publisher
    pub_certainty: Publisher
    pub_model_info: Publisher
    pub_diagnostics: Publisher
    pub_confidence: Publisher
    pub_colour: Publisher
    pub_class: dict[str, Publisher]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hades_perception", **kwargs)
        self._declare_parameters()
        p = self._param
        self.pipeline = self._load_pipeline()
        self.loaded_at = self.get_clock().now().to_msg()
        m = self.pipeline.manifest

        out_qos = QoSProfile(
            depth=5,
            reliability=ReliabilityPolicy.RELIABLE
            if p("output_qos_reliability") == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        self.pub_masks = self.create_publisher(SegmentationMasks, "masks", out_qos)
        self.pub_landmarks = self.create_publisher(LandmarkArray, "landmarks", out_qos)
        self.pub_certainty = self.create_publisher(Certainty, "certainty", out_qos)
        self.pub_confidence = self.create_publisher(Image, "confidence", out_qos)
        self.pub_colour = self.create_publisher(Image, "masks/colour", out_qos)
        self.pub_class = {c: self.create_publisher(Image, f"masks/{c}", out_qos) for c in m.outputs.classes}
        latched = QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE
        )
        self.pub_model_info = self.create_publisher(ModelInfo, "model_info", latched)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.worker = InferenceWorker(
            self._process, size=p("queue_size"), policy=p("queue_policy"), on_error=self._frame_failed
        )
        self.timing: dict[str, list[float]] = {}
        self.last_problem = ""
        in_qos = QoSProfile(
            depth=p("qos_depth"),
            reliability=ReliabilityPolicy.BEST_EFFORT
            if p("qos_reliability") == "best_effort"
            else ReliabilityPolicy.RELIABLE,
        )
        self.create_subscription(Image, p("image_topic"), self._on_frame, in_qos)
        if p("compressed_topic"):
            self.create_subscription(CompressedImage, p("compressed_topic"), self._on_frame, in_qos)
        self.diag_timer = self.create_timer(p("diagnostics_period"), self._publish_diagnostics)
        self._publish_model_info()
        self.get_logger().info(
            f"serving {m.name} {m.version} on {self.pipeline.engine.name}; listening on "
            f"{self.resolve_topic_name(p('image_topic'))}"
        )

    # --- parameters ------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        for spec in PARAMS:
            d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
            if spec.choices:
                d.additional_constraints = f"one of {list(spec.choices)}"
            if spec.range and isinstance(spec.default, float):
                d.floating_point_range = [
                    FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))
                ]
            elif spec.range and isinstance(spec.default, int) and not isinstance(spec.default, bool):
                d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
            self.declare_parameter(spec.name, spec.default, d)
            if spec.choices and self._param(spec.name) not in spec.choices:
                raise ValueError(f"parameter {spec.name}={self._param(spec.name)!r} is not one of {list(spec.choices)}")

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _load_pipeline(self) -> Pipeline:
        bundle = Path(self._param("model_bundle_path")).expanduser()
        ppm = self._param("px_per_mm") or None
        engine_file = self._param("engine_file_path")
        if engine_file:
            from hades_perception.bundle import open_bundle
            from hades_perception.tensorrt_engine import TensorRTEngine

            manifest = open_bundle(bundle)
            return Pipeline(
                manifest,
                TensorRTEngine(Path(engine_file), manifest.input.tensor),
                px_per_mm=ppm,
                dish_mm=self._param("dish_mm"),
            )
        threads = self._param("intra_op_threads") or None
        return Pipeline.from_bundle(
            bundle, tuple(self._param("execution_providers")), threads, px_per_mm=ppm, dish_mm=self._param("dish_mm")
        )

    # --- frames in ------------------------------------------------------------------------
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        """Hand the frame to the worker; nothing else happens on the executor."""
        self.worker.submit(Frame(msg, time.monotonic(), time.time()))

    def _decode(self, msg: Image | CompressedImage) -> np.ndarray:
        limit = self._param("max_image_pixels")
        if isinstance(msg, CompressedImage):
            return decode_compressed(msg.format, bytes(msg.data), limit)
        return decode_image(
            msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data), bool(msg.is_bigendian), limit
        )

    def _process(self, frame: Frame) -> None:
        t0 = time.monotonic()
        image = self._decode(frame.msg)
        t1 = time.monotonic()
        pred = self.pipeline(image)
        t2 = time.monotonic()
        self._publish(frame.msg.header, pred)
        t3 = time.monotonic()
        stamp = frame.msg.header.stamp.sec + frame.msg.header.stamp.nanosec * 1e-9
        transport = (frame.received_wall - stamp) * 1e3
        timings = [("transport", transport)] if 0 <= transport < 60_000 else []  # stamps from this clock only
        for key, ms in (
            *timings,
            ("queue", (t0 - frame.received) * 1e3),
            ("conversion", (t1 - t0) * 1e3),
            ("preprocess", pred.timing_ms["preprocess"]),
            ("engine", pred.timing_ms["engine"]),
            ("postprocess", pred.timing_ms["postprocess"]),
            ("publish", (t3 - t2) * 1e3),
            ("total", (t3 - frame.received) * 1e3),
        ):
            window = self.timing.setdefault(key, [])
            window.append(ms)
            del window[:-200]

    def _frame_failed(self, frame: Frame, exc: Exception) -> None:
        kind = "bad input" if isinstance(exc, InputError) else "inference failed"
        self.last_problem = f"{kind}: {exc}"
        self.get_logger().warning(
            f"frame {frame.msg.header.stamp.sec}.{frame.msg.header.stamp.nanosec:09d} "
            f"({frame.msg.header.frame_id}) skipped, {kind}: {exc}"
        )

    # --- results out ----------------------------------------------------------------------
    def _publish(self, header: Header, pred: Prediction) -> None:
        m = self.pipeline.manifest
        version = m.version
        masks = [_mono8(header, pred.masks[c]) for c in m.outputs.classes]
        confidence = _mono8(header, pred.confidence_map)
        self.pub_masks.publish(
            SegmentationMasks(
                header=header,
                model_version=version,
                class_names=list(m.outputs.classes),
                masks=masks,
                confidence=confidence,
            )
        )
        self.pub_landmarks.publish(
            LandmarkArray(
                header=header,
                model_version=version,
                landmarks=[
                    Landmark(
                        kind=lm.kind,
                        plant=-1 if lm.plant is None else lm.plant,
                        x=float(lm.x),
                        y=float(lm.y),
                        calibrated=lm.x_mm is not None,
                        x_mm=float(lm.x_mm or 0.0),
                        y_mm=float(lm.y_mm or 0.0),
                        confidence=float(lm.confidence),
                    )
                    for lm in pred.landmarks
                ],
            )
        )
        self.pub_certainty.publish(
            Certainty(
                header=header,
                model_name=m.name,
                model_version=version,
                class_names=list(pred.class_confidence),
                class_confidence=[float(v) for v in pred.class_confidence.values()],
                plant_confidence=[float(p.confidence) for p in pred.plants],
                plant_low_confidence=[bool(p.low_confidence) for p in pred.plants],
                low_confidence_threshold=float(pred.low_confidence_threshold),
                low_confidence=any(p.low_confidence for p in pred.plants),
            )
        )
        # Viewing topics: only filled when someone looks (a full-size mono8 is 12.6 MB).
        if self._param("publish_confidence_image") and self.pub_confidence.get_subscription_count():
            self.pub_confidence.publish(confidence)
        for c, img in zip(m.outputs.classes, masks, strict=True):
            if self.pub_class[c].get_subscription_count():
                self.pub_class[c].publish(img)
        if self._param("publish_colour_mask") and self.pub_colour.get_subscription_count():
            self.pub_colour.publish(self._colour(header, pred))

    def _colour(self, header: Header, pred: Prediction) -> Image:
        h, w = pred.confidence_map.shape
        rgb = np.zeros((h, w, 3), np.uint8)
        for i, (c, mask) in enumerate(pred.masks.items()):
            rgb[mask] = class_colour(c, i)
        return Image(header=header, height=h, width=w, encoding="rgb8", step=3 * w, data=rgb.tobytes())

    def _publish_model_info(self) -> None:
        m = self.pipeline.manifest
        info = ModelInfo(
            name=m.name,
            version=m.version,
            sha256=m.sha256,
            engine=self.pipeline.engine.name,
            class_names=list(m.outputs.classes),
            landmark_kinds=list(m.outputs.landmark_kinds),
            loaded_at=Time(sec=self.loaded_at.sec, nanosec=self.loaded_at.nanosec),
        )
        info.header.stamp = self.get_clock().now().to_msg()
        self.pub_model_info.publish(info)

    def _publish_diagnostics(self) -> None:
        s, m = self.worker.stats, self.pipeline.manifest
        lat = self.worker.latency.percentiles()
        level = DiagnosticStatus.OK
        message = "serving"
        if s.errors and self.last_problem:
            level, message = DiagnosticStatus.WARN, self.last_problem[:200]
        values = {
            "model": f"{m.name} {m.version}",
            "engine": self.pipeline.engine.name,
            "rate_hz": f"{self.worker.latency.rate_hz():.2f}",
            "received": str(s.received),
            "processed": str(s.processed),
            "dropped": str(s.dropped),
            "errors": str(s.errors),
            "queued": str(self.worker.queued),
        }
        values.update({f"latency_{k}_ms": f"{v:.1f}" for k, v in lat.items()})
        for key, window in self.timing.items():
            if window:
                values[f"{key}_p50_ms"] = f"{float(np.median(window)):.1f}"
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: perception",
            message=message,
            hardware_id=self.get_namespace(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(arr)

    def destroy_node(self) -> None:
        self.worker.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
