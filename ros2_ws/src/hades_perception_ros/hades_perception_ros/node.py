"""The ROS 2 adapter: Hades camera frames in; masks, landmarks, certainty out.

A managed (lifecycle) node that activates itself unless autostart:=false:
  configure   load the model (store channel through the cache, or the bundle folder)
              and start following the channel (and the shadow channel)
  activate    publishers and the camera subscription; deactivate removes them
  cleanup     stop following, free the engines
Topics (docs/node.md): in image_raw [+ compressed_topic]; out landmarks, certainty, plants,
monitoring, masks, masks/<class>, masks/colour, confidence, model_info, /diagnostics, shadow/...;
service pin_model. Frames go to an InferenceWorker thread, which runs the ServingSlot's
pipeline, read once per frame, so a swap takes effect between frames. A frame's work is
two stages on two threads: decoding, preprocess and engine on the inference thread; then
plants, landmarks and certainty, published, on a second thread while the next frame's
engine runs (ONNX Runtime releases the GIL; on a GPU the CPU is free meanwhile). The full-size images
(masks, viewing images) go to a second worker with a queue of one (keep_newest, drops
counted) and are built and published there, while the next frame runs. The follower
talks to the slot; a guard condition brings each swap to the executor's thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from hades_perception.inference.pipeline import Inferred, InputError, Pipeline
from hades_perception.inference.prediction import Prediction
from hades_perception.models.follower import ModelFollower
from hades_perception.serving import model_source
from hades_perception.serving.probation import Degraded, Probation
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import InferenceWorker
from hades_perception_msgs.msg import ModelInfo
from hades_perception_msgs.srv import PinModel
from hades_perception_ros import diagnostics, params
from hades_perception_ros.frame_monitoring import FrameMonitoring
from hades_perception_ros.image_codec import decode_message
from hades_perception_ros.log_bridge import route_core_logs
from hades_perception_ros.messages import LATCHED, FrameImages, Outputs, ViewingOutputs, model_info
from hades_perception_ros.shadow import Shadow, ShadowFrame

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at the callback
    received_wall: float  # time.time() at the callback, to compare with the header stamp
    version: str = ""  # the model version that started it (set by the first stage)


@dataclass
class Started:
    """A frame through its first stage, for the second. It carries what the frame was
    taken with (the model, the publishers), so a swap or a deactivation in between
    neither mixes versions nor loses the frame in hand."""

    pipeline: Pipeline
    outputs: Outputs
    viewing: ViewingOutputs
    monitoring: FrameMonitoring
    image: np.ndarray | None  # for the shadow candidate, when there is one
    inferred: Inferred
    marks: tuple[float, float, float]  # monotonic: taken from the queue, decoded, engine done


@dataclass
class ImageJob:
    """A served frame's full-size outputs, for the image worker."""

    header: Header
    pred: Prediction
    version: str
    outputs: Outputs
    viewing: ViewingOutputs


class PerceptionNode(LifecycleNode):
    # configured
    slot: ServingSlot | None = None
    worker: InferenceWorker[Frame] | None = None
    images: InferenceWorker[ImageJob] | None = None
    follower: ModelFollower | None = None
    shadow: Shadow | None = None
    # active
    outputs: Outputs | None = None
    viewing: ViewingOutputs | None = None
    pub_model_info: Any = None
    pub_diagnostics: Any = None
    _timer: Any = None
    monitoring: FrameMonitoring | None = None
    _degraded: tuple[Degraded, str] | None = None  # a swapped version that failed probation, and the action

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hades_perception", **kwargs)
        route_core_logs(self.get_logger())
        params.declare(self)
        self.frames = diagnostics.FrameLog()
        self._subs: list[Any] = []
        self._model_changed = self.create_guard_condition(self._on_model_changed)
        self._pin_done = self.create_guard_condition(lambda: None)  # wakes the executor when a pin ends
        # A pin the node made by itself (fallback_on_degradation) is announced on model_info
        # once it holds: the swap's own announcement came before the pin was recorded.
        self._self_pinned = self.create_guard_condition(self._publish_model_info)
        # Its own callback group: frames and timers go on while a pin is awaited.
        self.create_service(PinModel, "pin_model", self._on_pin, callback_group=MutuallyExclusiveCallbackGroup())

    def p(self, name: str) -> Any:
        return self.get_parameter(name).value

    # --- transitions ------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS: a model is loaded and validated (and its channel followed);
        FAILURE: nothing can be served (the reason is logged), back to unconfigured."""
        try:
            self._max_pixels = self.p("max_image_pixels")  # read here: frames run on another thread
            probation = Probation(self.p("probation_frames"), self.p("probation_max_error_rate"))
            self.monitoring = FrameMonitoring(self.p("drift_window"), self.p("drift_min_frames"), probation)
            self.worker = InferenceWorker(
                self._start,
                finish=self._finish,
                size=self.p("queue_size"),
                policy=self.p("queue_policy"),
                on_error=self._frame_failed,
            )
            self.images = InferenceWorker(
                self._publish_images, size=1, policy="keep_newest", on_error=self._images_failed, name="images"
            )
            self.slot, self.follower = model_source.start_serving(self.p, self.worker)
            self.slot.add_listener(lambda _new, _old, _attempt: self._model_changed.trigger())
            self.slot.add_listener(
                lambda new, old, _attempt: probation.swapped(new.manifest.version, old.manifest.version if old else "")
            )
            if self.p("shadow_channel"):
                if self.follower is None:
                    raise ValueError("shadow_channel needs store_url: the candidate comes from the store")
                slot, follower = model_source.start_shadow(self.p, self.follower, self.worker)
                self.shadow = Shadow(self, slot, follower)
                follower.start()
            if self.follower is not None:
                self.follower.start()
            if self.p("tracing_endpoint"):
                self.monitoring.start_tracing(self.get_fully_qualified_name(), self.p("tracing_endpoint"))
            if self.p("metrics_port"):
                host, port = self.p("metrics_host"), self.p("metrics_port")
                port = self.monitoring.start_metrics(
                    self.get_fully_qualified_name(), self.worker, self.slot, host, port
                )
                self.get_logger().info(f"Prometheus metrics on http://{host}:{port}/metrics")
        except Exception as exc:
            self.get_logger().error(f"cannot configure: {type(exc).__name__}: {exc}")
            self._release()
            return FAILURE
        m = self.slot.pipeline.manifest
        following = f"; following {self.follower.status.store} channel {self.p('channel')}" if self.follower else ""
        self.get_logger().info(f"serving {m.name} {m.version} on {self.slot.pipeline.engine.name}{following}")
        return SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS: outputs are published and frames are taken from the camera topic."""
        qos = QoSProfile(depth=5, reliability=params.reliability(self.p("output_qos_reliability")))
        assert self.slot is not None
        self.viewing = ViewingOutputs(
            self,
            qos,
            self.p("publish_confidence_image"),
            self.p("publish_colour_mask"),
            self.p("viewing_rate_hz"),
            self.p("viewing_downsample"),
        )
        self.viewing.add_classes(self.slot.pipeline.manifest.outputs.classes)
        self.pub_model_info = self.create_publisher(ModelInfo, "model_info", LATCHED)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self.shadow is not None:
            self.shadow.activate(qos)
        self.outputs = Outputs(self, "", qos)  # last: frames publish once this is set
        in_qos = QoSProfile(depth=self.p("qos_depth"), reliability=params.reliability(self.p("qos_reliability")))
        self._subs = [self.create_subscription(Image, self.p("image_topic"), self._on_frame, in_qos)]
        if self.p("compressed_topic"):
            self._subs.append(
                self.create_subscription(CompressedImage, self.p("compressed_topic"), self._on_frame, in_qos)
            )
        self._timer = self.create_timer(self.p("diagnostics_period"), self._publish_diagnostics)
        self._publish_model_info()
        self.get_logger().info(f"active: listening on {self.resolve_topic_name(self.p('image_topic'))} ({in_qos})")
        return SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS: no frame is taken; the frame in hand finished; outputs removed."""
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        outputs, self.outputs = self.outputs, None
        for worker in (self.worker, self.images):
            if worker is not None:
                worker.idle(timeout=30.0)
        if self.shadow is not None:
            self.shadow.deactivate()
        for pub in filter(None, (self.pub_model_info, self.pub_diagnostics)):
            self.destroy_publisher(pub)
        if outputs is not None:
            outputs.destroy()
        if self.viewing is not None:
            self.viewing.destroy()
        self.pub_model_info = self.pub_diagnostics = self.viewing = None
        return SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS: followers stopped, engines freed; configure may run again."""
        self._release()
        return SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """SUCCESS: from any state, everything stopped and freed."""
        if self.outputs is not None:
            self.on_deactivate(state)
        return self.on_cleanup(state)

    def _release(self) -> None:
        if self.monitoring is not None:
            self.monitoring.close()
        for part in (self.follower, self.shadow, self.worker, self.images):
            if isinstance(part, ModelFollower):
                part.stop(timeout=5.0)
            elif part is not None:
                part.close()
        self.follower = self.shadow = self.worker = self.images = self.slot = None
        self.monitoring = None

    # --- frames in, results out (the worker's thread) -----------------------------------
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        """Hand the frame to the worker; nothing else happens on the executor."""
        if self.worker is not None:
            self.worker.submit(Frame(msg, time.monotonic(), time.time()))

    def _start(self, frame: Frame) -> Started | None:
        """The first stage (the inference thread): decoding, preprocess and engine."""
        slot, outputs, viewing, monitoring = self.slot, self.outputs, self.viewing, self.monitoring
        if slot is None or outputs is None or viewing is None or monitoring is None:
            return None  # deactivated while the frame waited
        pipeline = slot.pipeline  # once: a swap during this frame takes effect at the next
        frame.version = pipeline.manifest.version
        t0 = time.monotonic()
        image = decode_message(frame.msg, self._max_pixels)
        t1 = time.monotonic()
        inferred = pipeline.start(image)
        kept = image if self.shadow is not None else None
        return Started(pipeline, outputs, viewing, monitoring, kept, inferred, (t0, t1, time.monotonic()))

    def _finish(self, frame: Frame, started: Started | None) -> None:
        """The second stage (its own thread, while the next frame's engine runs): plants,
        landmarks and certainty, published; the full-size images handed to the image worker."""
        if started is None:
            return  # deactivated while the frame waited
        t_finish = time.monotonic()
        pipeline, outputs, viewing, monitoring = started.pipeline, started.outputs, started.viewing, started.monitoring
        pred = pipeline.finish(started.inferred)
        t2 = time.monotonic()
        header, m = frame.msg.header, pipeline.manifest
        outputs.publish(header, pred, m.name, m.version, monitoring.verdict)
        if self.images is not None and (outputs.masks_wanted() or viewing.watched()):
            self.images.submit(ImageJob(header, pred, m.version, outputs, viewing))
        if self.shadow is not None and started.image is not None:
            self.shadow.submit(ShadowFrame(header, started.image, pred, m.version))
        t3 = time.monotonic()
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        t0, t1, t_engine = started.marks
        marks = (t0, t1, t2, t3)
        timing = {**pred.timing_ms, "handoff": (t_finish - t_engine) * 1e3}
        stages = self.frames.add_frame(frame.received, frame.received_wall - stamp, marks, timing)
        monitoring.add(pipeline, pred.signals, stages)
        attributes = {"model.version": m.version, "frame.stamp": stamp, "frame.id": header.frame_id}
        monitoring.trace(frame.received_wall, frame.received, marks, timing, attributes)

    def _publish_images(self, job: ImageJob) -> None:
        """The image worker: full-size masks and viewing images, built once for both. The
        viewing rate is counted here, on the frames whose images go out: a frame whose job
        was replaced by a newer one's uses up no viewing slot."""
        t0 = time.monotonic()
        images = FrameImages(job.header, job.pred, job.viewing.downsample)
        job.outputs.publish_masks(job.header, job.pred, job.version, images)
        if job.viewing.due():
            job.viewing.publish(job.header, job.pred, images)
        self.frames.add({"images": (time.monotonic() - t0) * 1e3})

    def _images_failed(self, job: ImageJob, exc: Exception) -> None:
        self.frames.problem(f"image outputs failed: {type(exc).__name__}: {exc}")
        stamp = job.header.stamp
        self.get_logger().warning(f"images of frame {stamp.sec}.{stamp.nanosec:09d} not published: {exc}")

    def _frame_failed(self, frame: Frame, exc: Exception) -> None:
        kind = "bad input" if isinstance(exc, InputError) else "inference failed"
        if self.monitoring is not None and self.slot is not None and not isinstance(exc, InputError):
            self.monitoring.failed(frame.version or self.slot.version)  # the version it ran on
        self.frames.problem(f"{kind}: {exc}")
        stamp = frame.msg.header.stamp
        self.get_logger().warning(
            f"frame {stamp.sec}.{stamp.nanosec:09d} ({frame.msg.header.frame_id}) skipped, {kind}: {exc}"
        )

    # --- the executor's side ---------------------------------------------------------------
    def _on_model_changed(self) -> None:
        """A new version was installed (on the follower's thread): announce it here."""
        if self.slot is None:
            return
        if self.viewing is not None:
            self.viewing.add_classes(self.slot.pipeline.manifest.outputs.classes)
        self._publish_model_info()
        history = self.slot.history()
        if history:
            a = history[-1]
            stages = ", ".join(f"{k} {v:.0f} ms" for k, v in a.stages_ms.items())
            self.get_logger().info(
                f"now serving {a.version} ({a.reason}): {stages}; golden passes waited {a.waited_ms:.0f} ms for gaps"
            )

    def _publish_model_info(self) -> None:
        if self.pub_model_info is None or self.slot is None:
            return
        f = self.follower
        stamp = self.get_clock().now().to_msg()
        store, channel, pinned = (f.status.store, f.channel, f.status.pinned) if f else ("", "", "")
        self.pub_model_info.publish(model_info(self.slot.pipeline, self.slot.loaded_at, stamp, store, channel, pinned))

    def _publish_diagnostics(self) -> None:
        if self.pub_diagnostics is None or self.slot is None or self.worker is None:
            return
        followed = {"model store": self.follower, "shadow model store": self.shadow.follower if self.shadow else None}
        drift, newly_degraded = self.monitoring.judge() if self.monitoring is not None else (None, None)
        if newly_degraded is not None:
            self._degraded = (newly_degraded, self._on_degraded(newly_degraded))
        status = diagnostics.statuses(
            self.get_fully_qualified_name(),
            self.get_namespace(),
            self.slot,
            self.worker,
            self.frames,
            followed,
            drift,
            self._degraded if self._degraded and self._degraded[0].version == self.slot.version else None,
            self.images,
        )
        arr = DiagnosticArray(status=status)
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(arr)

    def _on_degraded(self, d: Degraded) -> str:
        """Report a degraded swap; fall back to the previous version when allowed. The action taken."""
        self.get_logger().error(f"model {d.version} degraded after replacing {d.previous}: {d.reason}")
        follower = self.follower
        if not self.p("fallback_on_degradation") or follower is None:
            return "reported only (fallback_on_degradation is off)" if follower else "reported only (no store)"
        self.get_logger().warning(
            f"fallback_on_degradation: pinning {d.previous} by itself; release the pin (pin_model with an empty "
            "version) or roll the channel back once a person has decided"
        )

        def fall_back() -> None:
            ok, message = follower.pin_or_release(d.previous)
            log = self.get_logger().warning if ok else self.get_logger().error
            log(f"fallback to {d.previous}: {message}")
            self._self_pinned.trigger()

        threading.Thread(target=fall_back, name="fallback", daemon=True).start()
        return f"falling back to {d.previous} (pinned by the node)"

    async def _on_pin(self, request: PinModel.Request, response: PinModel.Response) -> PinModel.Response:
        """Pins on a thread of its own and awaits it: frames and timers go on meanwhile."""
        result: Future[tuple[bool, str]] = Future()

        def pin() -> None:
            try:
                f = self.follower
                no_store = (False, "this node serves a bundle folder, not a store channel (or is not configured)")
                result.set_result(f.pin_or_release(request.version) if f else no_store)
            except Exception as exc:  # reported to the caller; the node goes on
                result.set_exception(exc)
            finally:
                self._pin_done.trigger()

        threading.Thread(target=pin, name="pin_model", daemon=True).start()
        done = await result
        assert done is not None
        response.success, response.message = done
        self._publish_model_info()
        response.serving_version = self.slot.version if self.slot else ""
        self.get_logger().info(f"pin_model {request.version or '(release)'}: {response.message}")
        return response


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        if node.p("autostart"):
            if node.trigger_configure() != SUCCESS:
                raise SystemExit(1)  # the reason is in the log
            node.trigger_activate()
        # One thread: callbacks only hand frames on, and the multi-threaded executor stalls
        # 1-3 s about once a minute with 36 MB frames (benchmarks/README.md).
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if not rclpy.ok():
            return  # SIGTERM shut the context down during the executor's wait: a normal stop
        if isinstance(exc, ValueError | ParameterException):
            print(f"hades_perception: {exc}", flush=True)  # a bad parameter: that reason alone
            raise SystemExit(2) from None
        raise
    finally:
        if node is not None:
            node._release()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
