"""Drift of the frames this server predicted, judged as the node judges its own.

Every prediction's monitoring signals (single requests and batch images alike) go into
a DriftMonitor of the version that made it, against that version's reference signals
(the bundle's `reference_stats`), with the node's window and minimum (drift_window,
drift_min_frames). A new version starts an empty window: its reference is another.
The windows of the last few versions are kept, so a swap and back does not forget.

Adding costs a dict update per frame; the tests (a KS test per signal, about a
millisecond each) run when someone asks for the status, and once every HISTORY_EVERY
frames for the drift history (level and worst signal over time: the web app's
monitoring page), of which the last HISTORY_POINTS points per version are kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hades_perception.contract.bundle import Manifest
from hades_perception.monitoring.drift import LEVEL_NAMES, DriftMonitor, DriftStatus, worst

KEEP_VERSIONS = 4
HISTORY_EVERY = 5  # frames between two points of the drift history
HISTORY_POINTS = 720  # points kept per version


def _point(status: DriftStatus, frames_seen: int) -> dict[str, Any]:
    top = worst(status.results)
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "frames_seen": frames_seen,
        "window_frames": status.frames,
        "level": LEVEL_NAMES[status.level],
        "worst_signal": status.worst_signal,
        "worst_ratio": None if top is None or not top.threshold else round(top.value / top.threshold, 3),
    }


@dataclass
class _Version:
    """What is kept of one served version: its window, frames seen, its drift history."""

    monitor: DriftMonitor
    seen: int = 0
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))


class ServedDrift:
    def __init__(self, window: int, min_frames: int, keep_versions: int = KEEP_VERSIONS) -> None:
        self.window, self.min_frames, self.keep_versions = window, min_frames, keep_versions
        self._lock = threading.Lock()
        self._versions: OrderedDict[tuple[str, str], _Version] = OrderedDict()

    def _version(self, manifest: Manifest) -> _Version:
        key = (manifest.name, manifest.version)
        with self._lock:
            kept = self._versions.get(key)
            if kept is None:
                kept = self._versions[key] = _Version(DriftMonitor.for_model(manifest, self.window, self.min_frames))
                while len(self._versions) > self.keep_versions:
                    self._versions.popitem(last=False)
            self._versions.move_to_end(key)
            return kept

    def add(self, manifest: Manifest, signals: Mapping[str, float]) -> None:
        """One predicted frame's signals, in the window of the version that predicted it;
        every HISTORY_EVERY frames a point of the drift history."""
        kept = self._version(manifest)
        kept.monitor.add(signals)
        with self._lock:
            kept.seen += 1
            seen = kept.seen
        if seen % HISTORY_EVERY == 0:
            point = _point(kept.monitor.status(), seen)
            with self._lock:
                kept.history.append(point)

    def history(self, manifest: Manifest) -> list[dict[str, Any]]:
        """The drift history of `manifest`'s version, oldest point first."""
        with self._lock:
            kept = self._versions.get((manifest.name, manifest.version))
            return list(kept.history) if kept is not None else []

    def status(self, manifest: Manifest) -> DriftStatus:
        """The window of `manifest`'s version, judged now."""
        return self._version(manifest).monitor.status()

    def summary(self, manifest: Manifest) -> dict[str, Any]:
        """The window of `manifest`'s version, judged now, as the API answers it."""
        status = self.status(manifest)
        return {
            "model": {"name": manifest.name, "version": manifest.version},
            "level": LEVEL_NAMES[status.level],
            "message": status.message if status.frames else "no frames predicted by this version yet",
            "frames": status.frames,
            "window": self.window,
            "min_frames": self.min_frames,
            "signals": [r.to_dict() for r in status.results],
        }
