"""The ROS 2 adapter: Hades camera frames in; masks, landmarks, certainty out.

Thin on purpose: parameters come from params.PARAMS, frames are handed to an
InferenceWorker (the executor never waits for inference), and the worker turns
the pipeline's Prediction into messages stamped with the input header. All the
logic lives in the pure modules (pipeline, image_codec, worker).

Topics, relative to the node's namespace:
  in   image_raw (sensor_msgs/Image), optionally a CompressedImage topic
  out  landmarks (hades_perception_msgs/LandmarkArray), certainty (hades_perception_msgs/Certainty): first
       masks (hades_perception_msgs/SegmentationMasks: every class + confidence, with model version),
           built only while someone subscribes
       masks/<class> (mono8), masks/colour (rgb8), confidence (mono8): for viewing, published
           only while someone subscribes; their model version is the one in `masks` with the same stamp
       model_info (hades_perception_msgs/ModelInfo, transient local), /diagnostics
       shadow/{masks,landmarks,certainty,agreement,model_info}: the shadow candidate (shadow_channel)
  service  pin_model (hades_perception_msgs/PinModel): pin a version on this node, or release the pin

Models: with store_url set, the node follows a store channel (follower.py): new
versions are fetched, verified and loaded on a background thread, warmed up and
validated on the inference thread in the gaps between frames (so they never slow
a frame down on a machine whose engine takes every core), and swapped in between
two frames; a frame already running finishes on the model it started with.
Without store_url it serves model_bundle_path.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from hades_perception import agreement
from hades_perception.bundle import load_manifest
from hades_perception.follower import STAGES, Attempt, ModelFollower
from hades_perception.image_codec import decode_compressed, decode_image
from hades_perception.loading import load_pipeline
from hades_perception.model_cache import ModelCache
from hades_perception.overlay import class_colour
from hades_perception.params import PARAMS
from hades_perception.pipeline import InputError, Pipeline
from hades_perception.prediction import Prediction
from hades_perception.signing import load_trusted_keys, verify_bundle
from hades_perception.store import ModelStore
from hades_perception.tensorrt_engine import local_engine_key
from hades_perception.worker import InferenceWorker
from hades_perception_msgs.msg import (
    Agreement,
    Certainty,
    Landmark,
    LandmarkArray,
    ModelInfo,
    SegmentationMasks,
)
from hades_perception_msgs.srv import PinModel

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at the callback
    received_wall: float  # time.time() at the callback, to compare with the header stamp


@dataclass
class ShadowFrame:
    header: Header
    image: np.ndarray
    serving: Prediction
    serving_version: str


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


class RosLogHandler(logging.Handler):
    """The pure core logs with `logging`; in the node its records go to the ROS logger,
    so the store, the follower and the cache appear in the node's log like the rest."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {self.format(record)}"
        if record.levelno >= logging.ERROR:
            self.ros.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros.warning(text)
        elif record.levelno >= logging.INFO:
            self.ros.info(text)
        else:
            self.ros.debug(text)


class FrameImages:
    """One frame's mono8 images (a mask per class, the confidence map), each built at
    most once however many topics carry it: a full-size one is 12.6 MB, and the masks
    message and the viewing topics carry the same images."""

    def __init__(self, header: Header, pred: Prediction) -> None:
        self.header, self.pred = header, pred
        self._built: dict[tuple[str, ...], Image] = {}

    def mask(self, cls: str) -> Image:
        return self._once(("mask", cls), lambda: self.pred.masks[cls])

    def confidence(self) -> Image:
        return self._once(("confidence",), lambda: self.pred.confidence_map)

    def _once(self, key: tuple[str, ...], array: Callable[[], np.ndarray]) -> Image:
        if key not in self._built:
            self._built[key] = _mono8(self.header, array())
        return self._built[key]


class Outputs:
    """The result topics of one model (serving, or the shadow candidate), created once."""

    def __init__(self, node: Node, prefix: str, qos: QoSProfile) -> None:
        self.masks = node.create_publisher(SegmentationMasks, prefix + "masks", qos)
        self.landmarks = node.create_publisher(LandmarkArray, prefix + "landmarks", qos)
        self.certainty = node.create_publisher(Certainty, prefix + "certainty", qos)

    def publish(
        self, header: Header, pred: Prediction, name: str, version: str, images: FrameImages | None = None
    ) -> None:
        """Publish one frame's results: what a robot acts on first (landmarks, certainty:
        small), then the masks. The masks message is five full-size images (63 MB at
        4202x3006), so, like image_transport's lazy publishers, it is built only while
        someone subscribes to it."""
        self.landmarks.publish(
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
        self.certainty.publish(
            Certainty(
                header=header,
                model_name=name,
                model_version=version,
                class_names=list(pred.class_confidence),
                class_confidence=[float(v) for v in pred.class_confidence.values()],
                plant_confidence=[float(p.confidence) for p in pred.plants],
                plant_low_confidence=[bool(p.low_confidence) for p in pred.plants],
                low_confidence_threshold=float(pred.low_confidence_threshold),
                low_confidence=any(p.low_confidence for p in pred.plants),
            )
        )
        if not self.masks.get_subscription_count():
            return
        images = images or FrameImages(header, pred)
        self.masks.publish(
            SegmentationMasks(
                header=header,
                model_version=version,
                class_names=list(pred.classes),
                masks=[images.mask(c) for c in pred.classes],
                confidence=images.confidence(),
            )
        )


class PerceptionNode(Node):
    pipeline: Pipeline  # the serving model; replaced whole by a swap, read once per frame
    shadow: Pipeline | None
    worker: InferenceWorker[Frame]
    shadow_worker: InferenceWorker[ShadowFrame] | None
    follower: ModelFollower | None
    shadow_follower: ModelFollower | None
    outputs: Outputs
    pub_model_info: Publisher
    pub_diagnostics: Publisher
    pub_confidence: Publisher
    pub_colour: Publisher
    pub_class: dict[str, Publisher]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hades_perception", **kwargs)
        core = logging.getLogger("hades_perception")
        core.handlers = [RosLogHandler(self.get_logger())]
        core.setLevel(logging.INFO)
        core.propagate = False
        self._declare_parameters()
        p = self._param
        self.trusted = load_trusted_keys(Path(p("trusted_keys_dir"))) if p("trusted_keys_dir") else None
        self.follower = self.shadow_follower = None
        self.shadow, self.shadow_worker = None, None
        self.swaps: list[Attempt] = []
        # Which prebuilt TensorRT engine a bundle would need to ship for this machine.
        self.engine_key, why = local_engine_key()
        self.get_logger().info(
            f"prebuilt TensorRT engines: {self.engine_key}" if self.engine_key else f"no TensorRT engines: {why}"
        )
        # Created before the model: a candidate's golden passes run on it, between frames.
        self.worker = InferenceWorker(
            self._process, size=p("queue_size"), policy=p("queue_policy"), on_error=self._frame_failed
        )
        self.pipeline = self._start_model()
        self.loaded_at = self.get_clock().now().to_msg()

        self.out_qos = QoSProfile(
            depth=5,
            reliability=ReliabilityPolicy.RELIABLE
            if p("output_qos_reliability") == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        self.outputs = Outputs(self, "", self.out_qos)
        self.pub_confidence = self.create_publisher(Image, "confidence", self.out_qos)
        self.pub_colour = self.create_publisher(Image, "masks/colour", self.out_qos)
        self.pub_class = {
            c: self.create_publisher(Image, f"masks/{c}", self.out_qos) for c in self.pipeline.manifest.outputs.classes
        }
        self.pub_model_info = self.create_publisher(ModelInfo, "model_info", LATCHED)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

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
        # Pinning waits for a fetch, a load and a validation on a thread of its own. The service
        # has its own callback group, so frames and timers go on while it awaits; the guard
        # condition (default group) wakes the executor when the pin is done.
        self.pin_done = self.create_guard_condition(lambda: None)
        self.create_service(PinModel, "pin_model", self._on_pin, callback_group=MutuallyExclusiveCallbackGroup())
        self._publish_model_info()
        if p("shadow_channel"):
            self._start_shadow()
        if self.follower is not None:
            self.follower.start()
        m = self.pipeline.manifest
        self.get_logger().info(
            f"serving {m.name} {m.version} on {self.pipeline.engine.name}; listening on "
            f"{self.resolve_topic_name(p('image_topic'))}"
            + (f"; following {self.follower.status.store} channel {p('channel')}" if self.follower else "")
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

    def _load(self, bundle: Path, verified: bool = False) -> Pipeline:
        """A pipeline for a bundle folder on this node's engine settings (see loading.py).
        `engine_file_path` applies while no store is followed."""
        engine_file = self._param("engine_file_path")
        return load_pipeline(
            bundle,
            providers=tuple(self._param("execution_providers")),
            threads=self._param("intra_op_threads") or None,
            engine_key=self.engine_key,
            engine_file=Path(engine_file).expanduser() if engine_file and self.follower is None else None,
            force_engine_update=self._param("force_engine_update"),
            verified=verified,
            px_per_mm=self._param("px_per_mm") or None,
            dish_mm=self._param("dish_mm"),
        )

    def _cache(self) -> ModelCache:
        folder = self._param("cache_dir")
        if not folder:
            data = os.environ.get("HADES_DATA_DIR")
            folder = str(Path(data) / "model-cache") if data else "~/.cache/hades_perception"
        return ModelCache(Path(folder))

    def _follower(
        self,
        store: ModelStore | None,
        cache: ModelCache,
        model: str,
        channel: str,
        on_ready: Callable[[Pipeline, Attempt], None],
        loaded_version: Callable[[], str],
    ) -> ModelFollower:
        """A follower of one channel on this node's engine, trust and polling settings."""
        return ModelFollower(
            store,
            cache,
            model,
            channel,
            load=lambda bundle: self._load(bundle, verified=True),  # the cache verified it
            on_ready=on_ready,
            serving_version=loaded_version,
            trusted=self.trusted,
            poll_period=self._param("poll_period"),
            latency_budget_ms=self._param("latency_budget_ms") or None,
            run_idle=self.worker.run_when_idle,
        )

    def _start_model(self) -> Pipeline:
        """The channel's version when a store is set (from the cache without a network),
        else, or when that fails, the bundle folder in model_bundle_path."""
        p = self._param
        fallback = Path(p("model_bundle_path")).expanduser()
        if p("store_url"):
            model = p("model_name") or load_manifest(fallback).name
            self.follower = self._follower(
                ModelStore.open(p("store_url")),
                self._cache(),
                model,
                p("channel"),
                self._swap,
                lambda: self.pipeline.manifest.version,
            )
            got = self.follower.initial()
            if got is not None:
                pipeline, attempt = got
                self.swaps.append(attempt)
                return pipeline
            self.get_logger().warning(
                f"channel {p('channel')} of {model} not servable now "
                f"({self.follower.status.last_error or 'never set'}); serving {fallback} until it is"
            )
        if self.trusted:
            verify_bundle(fallback, self.trusted)
        return self._load(fallback)

    def _swap(self, pipeline: Pipeline, attempt: Attempt) -> None:
        """Install a validated pipeline. The worker reads self.pipeline once per frame,
        so a frame in flight finishes on the old one, which is freed when it ends."""
        old = self.pipeline
        self.pipeline = pipeline
        self.loaded_at = self.get_clock().now().to_msg()
        self.swaps.append(attempt)
        del self.swaps[:-20]
        if not self.context.ok():
            return  # shutting down: nobody to tell
        self._publish_model_info()
        stages = ", ".join(f"{k} {attempt.stages_ms.get(k, 0.0):.0f} ms" for k in STAGES)
        stages += f"; golden passes waited {attempt.waited_ms:.0f} ms for gaps between frames"
        self.get_logger().info(
            f"now serving {pipeline.manifest.version} (was {old.manifest.version}; {attempt.reason}): {stages}"
        )

    async def _on_pin(self, request: PinModel.Request, response: PinModel.Response) -> PinModel.Response:
        """Awaits the pin on another thread: the executor (single-threaded) keeps taking
        frames and publishing diagnostics meanwhile."""
        result: Future[tuple[bool, str]] = Future()

        def pin() -> None:
            try:
                result.set_result(self._pin(request.version))
            except Exception as exc:  # reported to the caller, the node goes on
                result.set_exception(exc)
            finally:
                self.pin_done.trigger()

        threading.Thread(target=pin, name="pin_model", daemon=True).start()
        done = await result
        assert done is not None
        response.success, response.message = done
        self._publish_model_info()
        response.serving_version = self.pipeline.manifest.version
        self.get_logger().info(f"pin_model {request.version or '(release)'}: {response.message}")
        return response

    def _pin(self, version: str) -> tuple[bool, str]:
        """Pin `version` (release the pin when empty): (success, message)."""
        if self.follower is None:
            return False, "this node serves a bundle folder, not a store channel"
        if version:
            attempt = self.follower.pin(version)
            return attempt.ok, f"pinned to {version}" if attempt.ok else attempt.error
        released = self.follower.release()
        message = "following channel " + self._param("channel")
        if released is not None and not released.ok:
            message += f"; its version {released.version} failed: {released.error}"
        return released is None or released.ok, message

    # --- shadow mode --------------------------------------------------------------------
    def _start_shadow(self) -> None:
        if self.follower is None:
            raise ValueError("shadow_channel needs store_url: the candidate comes from the store")
        self.shadow_outputs = Outputs(self, "shadow/", self.out_qos)
        self.pub_agreement = self.create_publisher(Agreement, "shadow/agreement", self.out_qos)
        self.pub_shadow_info = self.create_publisher(ModelInfo, "shadow/model_info", LATCHED)
        self.tally = agreement.Tally()
        self.shadow_follower = self._follower(
            self.follower.store,
            self.follower.cache,
            self.follower.model,
            self._param("shadow_channel"),
            self._shadow_ready,
            lambda: self.shadow.manifest.version if self.shadow else "",
        )
        # The candidate never delays the serving model: its own worker, newest frame only.
        self.shadow_worker = InferenceWorker(self._shadow_process, size=1, on_error=self._shadow_failed)
        self.shadow_follower.start()

    def _shadow_ready(self, pipeline: Pipeline, attempt: Attempt) -> None:
        self.shadow = pipeline
        self.pub_shadow_info.publish(self._model_info(pipeline, self._param("shadow_channel"), ""))
        self.get_logger().info(f"shadow candidate {pipeline.manifest.version} ready ({attempt.reason})")

    def _shadow_failed(self, item: ShadowFrame, exc: Exception) -> None:
        self.get_logger().warning(f"shadow candidate failed on frame {item.header.stamp.sec}: {exc}")

    def _shadow_process(self, item: ShadowFrame) -> None:
        candidate = self.shadow
        if candidate is None or candidate.manifest.version == item.serving_version:
            return  # nothing to compare: no candidate yet, or the candidate is what is serving
        pred = candidate(item.image)
        m = candidate.manifest
        self.shadow_outputs.publish(item.header, pred, m.name, m.version)
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

    # --- frames in ------------------------------------------------------------------------
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        """Hand the frame to the worker; nothing else happens on the executor."""
        self.worker.submit(Frame(msg, time.monotonic(), time.time()))

    def _decode(self, msg: Image | CompressedImage) -> np.ndarray:
        limit = self._param("max_image_pixels")
        if isinstance(msg, CompressedImage):
            return decode_compressed(msg.format, memoryview(msg.data), limit)
        return decode_image(
            msg.encoding, msg.height, msg.width, msg.step, memoryview(msg.data), bool(msg.is_bigendian), limit
        )

    def _process(self, frame: Frame) -> None:
        pipeline = self.pipeline  # once: a swap during this frame takes effect at the next
        t0 = time.monotonic()
        image = self._decode(frame.msg)
        t1 = time.monotonic()
        pred = pipeline(image)
        t2 = time.monotonic()
        self._publish(frame.msg.header, pred, pipeline)
        if self.shadow_worker is not None:
            self.shadow_worker.submit(ShadowFrame(frame.msg.header, image, pred, pipeline.manifest.version))
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
    def _publish(self, header: Header, pred: Prediction, pipeline: Pipeline) -> None:
        m = pipeline.manifest
        images = FrameImages(header, pred)
        self.outputs.publish(header, pred, m.name, m.version, images)
        # Viewing topics: only filled when someone looks (a full-size mono8 is 12.6 MB).
        if self._param("publish_confidence_image") and self.pub_confidence.get_subscription_count():
            self.pub_confidence.publish(images.confidence())
        for c in pred.classes:
            if c not in self.pub_class:  # a new version may bring a class
                self.pub_class[c] = self.create_publisher(Image, f"masks/{c}", self.out_qos)
            if self.pub_class[c].get_subscription_count():
                self.pub_class[c].publish(images.mask(c))
        if self._param("publish_colour_mask") and self.pub_colour.get_subscription_count():
            self.pub_colour.publish(self._colour(header, pred))

    def _colour(self, header: Header, pred: Prediction) -> Image:
        h, w = pred.confidence_map.shape
        rgb = np.zeros((h, w, 3), np.uint8)
        for i, (c, mask) in enumerate(pred.masks.items()):
            rgb[mask] = class_colour(c, i)
        return Image(header=header, height=h, width=w, encoding="rgb8", step=3 * w, data=rgb.tobytes())

    def _model_info(self, pipeline: Pipeline, channel: str, pinned: str) -> ModelInfo:
        m = pipeline.manifest
        info = ModelInfo(
            name=m.name,
            version=m.version,
            sha256=m.sha256,
            engine=pipeline.engine.name,
            class_names=list(m.outputs.classes),
            landmark_kinds=list(m.outputs.landmark_kinds),
            loaded_at=Time(sec=self.loaded_at.sec, nanosec=self.loaded_at.nanosec),
            store=self.follower.status.store if self.follower else "",
            channel=channel,
            pinned=pinned,
        )
        info.header.stamp = self.get_clock().now().to_msg()
        return info

    def _publish_model_info(self) -> None:
        f = self.follower
        self.pub_model_info.publish(
            self._model_info(self.pipeline, f.channel if f else "", f.status.pinned if f else "")
        )

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
        arr = DiagnosticArray(status=[status, *self._store_diagnostics()])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(arr)

    def _store_diagnostics(self) -> list[DiagnosticStatus]:
        """One status per followed channel: where it points, what failed, where a swap's time went."""
        out = []
        for role, f in (("model store", self.follower), ("shadow model store", self.shadow_follower)):
            if f is None:
                continue
            st = f.status
            values = {
                "store": st.store,
                "model": st.model,
                "channel": st.channel,
                "channel_version": st.channel_version,
                "serving_version": f.serving_version(),
                "pinned": st.pinned,
                "store_reachable": str(st.store_reachable),
                "last_poll_age_s": f"{time.time() - st.last_poll:.1f}" if st.last_poll else "",
                "last_error": st.last_error[:300],
            }
            a = st.last_attempt
            if a is not None:
                values.update({"last_attempt_version": a.version, "last_attempt_ok": str(a.ok)})
                values.update({f"last_attempt_{k}_ms": f"{v:.1f}" for k, v in a.stages_ms.items()})
                if a.pointer_seen:
                    values["last_attempt_pointer_seen"] = f"{a.pointer_seen:.3f}"
                if a.ready_at:
                    values["last_attempt_ready_at"] = f"{a.ready_at:.3f}"
                values["last_attempt_waited_for_gap_ms"] = f"{a.waited_ms:.1f}"
            level, message = DiagnosticStatus.OK, f"following {st.channel}"
            if st.pinned:
                message = f"pinned to {st.pinned}"
            if st.store_reachable is False:
                level, message = DiagnosticStatus.WARN, "store unreachable; serving " + f.serving_version()
            elif st.last_error:
                level, message = DiagnosticStatus.WARN, st.last_error[:200]
            out.append(
                DiagnosticStatus(
                    level=level,
                    name=f"{self.get_fully_qualified_name()}: {role}",
                    message=message,
                    hardware_id=self.get_namespace(),
                    values=[KeyValue(key=k, value=v) for k, v in values.items()],
                )
            )
        return out

    def destroy_node(self) -> None:
        # Also called by rclpy.shutdown() on a node whose __init__ raised (a parameter
        # out of range, a bundle that fails its checks): stop only what was started.
        for name in ("follower", "shadow_follower", "worker", "shadow_worker"):
            part = getattr(self, name, None)
            if isinstance(part, ModelFollower):
                part.stop(timeout=5.0)
            elif part is not None:
                part.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        # One thread is enough (callbacks only hand frames on) and avoids the multi-threaded
        # executor's stalls: 1-3 s without callbacks every minute or so with 36 MB frames
        # (benchmarks/README.md, "Executor stalls").
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGTERM shut the context down during the executor's wait: a normal stop.
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
