"""/diagnostics for the node: how frames are served, and where each followed store stands.

The frame threads (inference, its second stage, images) record per-stage times and the
last problem in a FrameLog (locked); the executor reads a snapshot of it once a period,
so nothing the executor reads is mutated while it reads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from hades_perception.models.follower import ModelFollower
from hades_perception.monitoring.drift import LEVEL_NAMES, DriftStatus
from hades_perception.serving.probation import Degraded
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import InferenceWorker

WINDOW = 200  # frames per stage window
# The pipeline's stages in a frame's order, as its timing_ms names them (handoff: the
# wait between the node's two stages); /diagnostics and traces both list them so.
PIPELINE_STAGES = ("preprocess", "engine", "handoff", "postprocess", "monitoring")


class FrameLog:
    """Per-stage times (ms) of the last frames, and the last problem, written by the
    frame threads and read by the executor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, list[float]] = {}
        self._problem = ""

    def add(self, stages: dict[str, float]) -> None:
        with self._lock:
            for key, ms in stages.items():
                window = self._stages.setdefault(key, [])
                window.append(ms)
                del window[:-WINDOW]

    def add_frame(
        self, received: float, transport_s: float, marks: tuple[float, float, float, float], timing_ms: dict[str, float]
    ) -> dict[str, float]:
        """One served frame: `received` (monotonic) at the callback, header stamp to
        callback in s (kept only when both clocks agree), and the monotonic marks before
        decoding, after decoding, after inference and after publishing. Returns the
        frame's stage times (ms), for the metrics endpoint."""
        t0, t1, t2, t3 = marks
        stages = {"transport": transport_s * 1e3} if 0 <= transport_s < 60 else {}
        stages["queue"] = (t0 - received) * 1e3
        stages["conversion"] = (t1 - t0) * 1e3
        stages.update({k: timing_ms[k] for k in PIPELINE_STAGES if k in timing_ms})
        stages["publish"] = (t3 - t2) * 1e3
        stages["total"] = (t3 - received) * 1e3
        self.add(stages)
        return stages

    def problem(self, text: str) -> None:
        with self._lock:
            self._problem = text

    def snapshot(self) -> tuple[dict[str, float], str]:
        """(median ms per stage, the last problem)."""
        with self._lock:
            return {k: float(np.median(v)) for k, v in self._stages.items() if v}, self._problem


def _status(level: bytes, name: str, message: str, ns: str, values: dict[str, str]) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=ns,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


def serving_status(
    name: str,
    ns: str,
    slot: ServingSlot,
    worker: InferenceWorker[Any],
    frames: FrameLog,
    images: InferenceWorker[Any] | None = None,
) -> DiagnosticStatus:
    """`images`: the worker publishing full-size images; its drops are frames whose masks
    and viewing images were skipped because the previous frame's were still going out."""
    s = worker.snapshot()
    m = slot.pipeline.manifest
    stages, problem = frames.snapshot()
    level, message = DiagnosticStatus.OK, "serving"
    if s.errors and problem:
        level, message = DiagnosticStatus.WARN, problem[:200]
    values = {
        "model": f"{m.name} {m.version}",
        "engine": slot.pipeline.engine.name,
        "rate_hz": f"{worker.latency.rate_hz():.2f}",
        "received": str(s.received),
        "processed": str(s.processed),
        "dropped": str(s.dropped),
        "errors": str(s.errors),
        "queued": str(worker.queued),
    }
    if images is not None:
        values["images_dropped"] = str(images.snapshot().dropped)
    values.update({f"latency_{k}_ms": f"{v:.1f}" for k, v in worker.latency.percentiles().items()})
    values.update({f"{k}_p50_ms": f"{v:.1f}" for k, v in stages.items()})
    return _status(level, f"{name}: perception", message, ns, values)


def store_status(name: str, ns: str, role: str, follower: ModelFollower) -> DiagnosticStatus:
    """Where a followed channel points, what failed, where a swap's time went."""
    st = follower.status
    values = {
        "store": st.store,
        "model": st.model,
        "channel": st.channel,
        "channel_version": st.channel_version,
        "serving_version": follower.slot.version,
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
        level, message = DiagnosticStatus.WARN, "store unreachable; serving " + follower.slot.version
    elif st.last_error:
        level, message = DiagnosticStatus.WARN, st.last_error[:200]
    return _status(level, f"{name}: {role}", message, ns, values)


def drift_status(name: str, ns: str, drift: DriftStatus) -> DiagnosticStatus:
    """The drift verdict over the recent frames, with every drifted signal's test."""
    values = {"frames": str(drift.frames), "signals_tested": str(len(drift.results))}
    for r in drift.results:
        if r.drifted:
            level = LEVEL_NAMES[r.level]
            test = f"KS D {r.value:.2f} > {r.threshold:.2f}"
            values[r.name] = f"{level}: median {r.shift:+.4g} ({r.effect:.1f} spreads), {test}"
    return _status(bytes([drift.level]), f"{name}: drift", drift.message, ns, values)


def degraded_status(name: str, ns: str, degraded: Degraded, action: str) -> DiagnosticStatus:
    """A swapped version that failed its probation, and what the node did about it."""
    values = {"version": degraded.version, "previous": degraded.previous, "reason": degraded.reason, "action": action}
    message = f"version {degraded.version} degraded: {degraded.reason}; {action}"
    return _status(DiagnosticStatus.ERROR, f"{name}: model probation", message[:300], ns, values)


def statuses(
    name: str,
    ns: str,
    slot: ServingSlot,
    worker: InferenceWorker[Any],
    frames: FrameLog,
    followed: dict[str, ModelFollower | None],
    drift: DriftStatus | None = None,
    degraded: tuple[Degraded, str] | None = None,
    images: InferenceWorker[Any] | None = None,
) -> list[DiagnosticStatus]:
    """The node's /diagnostics: serving, drift, a degraded swap (with the action taken),
    then one status per followed channel (by role)."""
    out = [serving_status(name, ns, slot, worker, frames, images)]
    if drift is not None:
        out.append(drift_status(name, ns, drift))
    if degraded is not None:
        out.append(degraded_status(name, ns, *degraded))
    out += [store_status(name, ns, role, f) for role, f in followed.items() if f is not None]
    return out
