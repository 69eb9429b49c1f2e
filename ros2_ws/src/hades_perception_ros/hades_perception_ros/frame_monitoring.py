"""The node's monitoring: a drift window per served version, its latest verdict, the
probation of a newly swapped version, the optional Prometheus endpoint and the optional
OpenTelemetry trace of each frame's stages.

Threads: the worker adds each frame's signals and stage times; the executor judges the
window once per diagnostics period (the KS tests cost about a millisecond per signal,
so never per frame) and the verdict it keeps is what the next frames' `monitoring`
messages and the endpoint report. Pure Python apart from its callers: no rclpy here.
"""

from __future__ import annotations

from typing import Any

from hades_perception.inference.pipeline import Pipeline
from hades_perception.monitoring.drift import LEVEL_NAMES, OK, DriftMonitor, DriftStatus
from hades_perception.serving.probation import Degraded, Probation
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import InferenceWorker
from hades_perception_ros.diagnostics import PIPELINE_STAGES


class FrameMonitoring:
    def __init__(self, window: int, min_frames: int, probation: Probation | None = None) -> None:
        self.window, self.min_frames = window, min_frames
        self.probation = probation or Probation()
        self._drift: tuple[str, DriftMonitor] | None = None  # (version, its window)
        self.verdict: tuple[int, str] = (OK, "")  # level, message: carried on `monitoring`
        self.worst_signal = ""  # the signal that drifted most, while one has
        self.metrics: Any = None  # monitoring.metrics.Metrics while the endpoint is on
        self.tracer: Any = None  # monitoring.tracing.FrameTracer while tracing is on

    # --- the worker's thread --------------------------------------------------------------
    def add(self, pipeline: Pipeline, signals: dict[str, float], stages_ms: dict[str, float]) -> None:
        """One served frame. A new version brings its own reference, so its window starts empty."""
        m = pipeline.manifest
        current = self._drift
        if current is None or current[0] != m.version:
            current = self._drift = (m.version, DriftMonitor.for_model(m, self.window, self.min_frames))
        current[1].add(signals)
        self.probation.frame(m.version, ok=True)
        if self.metrics is not None:
            self.metrics.observe(stages_ms)

    def trace(
        self,
        received_wall: float,
        received: float,
        marks: tuple[float, float, float, float],
        timing_ms: dict[str, float],
        attributes: dict[str, Any],
    ) -> None:
        """The frame's trace (when tracing is on), from the times the node measured:
        `received` and `marks` on the monotonic clock, anchored at `received_wall`."""
        if self.tracer is None:
            return
        from hades_perception.monitoring.tracing import sequential

        def ns(mono: float) -> int:
            return round((received_wall + (mono - received)) * 1e9)

        t0, t1, t2, t3 = marks
        pipeline = [(k, timing_ms[k]) for k in PIPELINE_STAGES if k in timing_ms]
        stages = [("queue", ns(received), ns(t0)), ("conversion", ns(t0), ns(t1)), *sequential(ns(t1), pipeline)]
        stages.append(("publish", ns(t2), ns(t3)))
        self.tracer.frame(ns(received), ns(t3), stages, attributes)

    def start_tracing(self, service: str, endpoint: str) -> None:
        try:
            from hades_perception.monitoring.tracing import FrameTracer
        except ImportError as exc:
            raise ValueError(
                f"tracing_endpoint needs OpenTelemetry (pip install hades_perception[tracing]): {exc}"
            ) from exc
        self.tracer = FrameTracer(service, endpoint)

    def failed(self, version: str) -> None:
        """A frame the model failed on (inference, not bad input)."""
        self.probation.frame(version, ok=False)

    # --- the executor's thread ------------------------------------------------------------
    def judge(self) -> tuple[DriftStatus | None, Degraded | None]:
        """Test the window now and keep the verdict (None before the first frame); and
        whether the version on probation just turned out degraded (once per swap)."""
        current = self._drift
        status = current[1].status() if current is not None else None
        if status is not None:
            self.verdict = (status.level, status.message)
            self.worst_signal = status.worst_signal
        # A version on probation is judged by its own window only: until it has served a
        # frame, the window here is still its predecessor's (whose drift is not its fault).
        own = current is not None and current[0] == self.probation.version
        return status, self.probation.check(*(self.verdict if own else (OK, "")))

    def start_metrics(self, node: str, worker: InferenceWorker[Any], slot: ServingSlot, host: str, port: int) -> int:
        """The Prometheus endpoint (counters, model and drift read when scraped); its port."""
        try:
            from hades_perception.monitoring.metrics import Metrics
        except ImportError as exc:
            raise ValueError(
                f"metrics_port needs prometheus-client (pip install hades_perception[metrics]): {exc}"
            ) from exc

        def model() -> dict[str, str]:
            p = slot.pipeline
            return {"name": p.manifest.name, "version": p.manifest.version, "engine": p.engine.name}

        def drift() -> tuple[str, str]:
            return LEVEL_NAMES[self.verdict[0]], self.worst_signal

        self.metrics = Metrics(node, worker.snapshot, drift, model)
        return int(self.metrics.start(host, port))

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        self._drift = None
