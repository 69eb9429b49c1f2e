"""Drift of the frames this server predicted, judged as the node judges its own.

Every prediction's monitoring signals (single requests and batch images alike) go into
a DriftMonitor of the version that made it, against that version's reference signals
(the bundle's `reference_stats`), with the node's window and minimum (drift_window,
drift_min_frames). A new version starts an empty window: its reference is another.
The windows of the last few versions are kept, so a swap and back does not forget.

Adding costs a dict update per frame; the tests (a KS test per signal, about a
millisecond each) run only when someone asks for the status.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from hades_perception.contract.bundle import Manifest
from hades_perception.monitoring.drift import LEVEL_NAMES, DriftMonitor, DriftStatus

KEEP_VERSIONS = 4


class ServedDrift:
    def __init__(self, window: int, min_frames: int, keep_versions: int = KEEP_VERSIONS) -> None:
        self.window, self.min_frames, self.keep_versions = window, min_frames, keep_versions
        self._lock = threading.Lock()
        self._monitors: OrderedDict[tuple[str, str], DriftMonitor] = OrderedDict()

    def _monitor(self, manifest: Manifest) -> DriftMonitor:
        key = (manifest.name, manifest.version)
        with self._lock:
            monitor = self._monitors.get(key)
            if monitor is None:
                monitor = DriftMonitor.for_model(manifest, self.window, self.min_frames)
                self._monitors[key] = monitor
                while len(self._monitors) > self.keep_versions:
                    self._monitors.popitem(last=False)
            self._monitors.move_to_end(key)
            return monitor

    def add(self, manifest: Manifest, signals: Mapping[str, float]) -> None:
        """One predicted frame's signals, in the window of the version that predicted it."""
        self._monitor(manifest).add(signals)

    def status(self, manifest: Manifest) -> DriftStatus:
        """The window of `manifest`'s version, judged now."""
        return self._monitor(manifest).status()

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
