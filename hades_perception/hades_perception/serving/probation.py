"""A newly swapped version is on probation: if it fails frames the previous version
served, or its drift status turns to ERROR, the adapter reports it as degraded and,
when its operator allowed it, falls back to the previous version by itself.

The golden check proves a version computes what its exporter saw; probation watches
what it does on this robot's frames. Falling back is off by default: a channel is a
person's decision, and a node that pins itself back says so in its log and its
diagnostics until a person releases the pin or rolls the channel back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Degraded:
    version: str
    previous: str
    reason: str


class Probation:
    """Counts the first `frames` frames of each newly installed version (the worker's
    thread reports them, the executor asks for the verdict)."""

    def __init__(self, frames: int = 50, max_error_rate: float = 0.2) -> None:
        self.frames, self.max_error_rate = frames, max_error_rate
        self._lock = threading.Lock()
        self._version = self._previous = ""
        self._served = self._failed = 0
        self._reported: Degraded | None = None

    def swapped(self, version: str, previous: str) -> None:
        """A new version is served from now on (`previous`: what it replaced; "" at start-up,
        which is not a swap: nothing to fall back to)."""
        with self._lock:
            self._version, self._previous = version, previous
            self._served = self._failed = 0
            self._reported = None

    @property
    def version(self) -> str:
        """The version on probation ("" before the first swap)."""
        with self._lock:
            return self._version

    def frame(self, version: str, ok: bool) -> None:
        """A frame served by `version` finished (ok) or failed in inference (not bad input)."""
        with self._lock:
            if version != self._version or self._served >= self.frames:
                return
            self._served += 1
            self._failed += not ok

    def check(self, drift_level: int, drift_message: str = "") -> Degraded | None:
        """The verdict on the version on probation, once: a Degraded the first time it is
        found degraded, None otherwise (and for every later call about the same swap)."""
        with self._lock:
            if not self._previous or self._reported is not None:
                return None
            reason = ""
            if self._served and self._failed / self._served > self.max_error_rate:
                reason = f"{self._failed} of its first {self._served} frames failed"
            elif drift_level >= 2 and self._served < self.frames:
                reason = f"drift ERROR within its first {self.frames} frames: {drift_message}"
            if not reason:
                return None
            self._reported = Degraded(self._version, self._previous, reason)
            return self._reported

    @property
    def degraded(self) -> Degraded | None:
        """The last degradation found (until the next swap)."""
        with self._lock:
            return self._reported
