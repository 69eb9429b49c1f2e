"""A bounded frame queue and the worker thread that runs inference off the executor.

The camera can be faster than the engine. Then the queue's policy decides:
`keep_newest` (default) drops the oldest waiting frame so latency stays bounded
and the robot sees the freshest plate; `keep_oldest` refuses the new frame.
Every drop is counted. No rclpy here: the node passes in what to do per frame.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")
POLICIES = ("keep_newest", "keep_oldest")


@dataclass
class Stats:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str = ""


class LatencyWindow:
    """The last N latencies (ms) for percentiles; bounded memory."""

    def __init__(self, size: int = 500) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._times: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._values.append(ms)
        self._times.append(time.monotonic())

    def percentiles(self) -> dict[str, float]:
        if not self._values:
            return {}
        v = np.fromiter(self._values, float)
        return {
            "p50": float(np.percentile(v, 50)),
            "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)),
            "max": float(v.max()),
        }

    def rate_hz(self, horizon_s: float = 10.0) -> float:
        now = time.monotonic()
        recent = [t for t in self._times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class InferenceWorker(Generic[T]):
    """Runs `handle(item)` for queued items on its own thread."""

    def __init__(
        self,
        handle: Callable[[T], None],
        *,
        size: int = 1,
        policy: str = "keep_newest",
        on_error: Callable[[T, Exception], None] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"queue policy {policy!r} is not one of {POLICIES}")
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.handle, self.on_error = handle, on_error
        self.size, self.policy = size, policy
        self.stats = Stats()
        self.latency = LatencyWindow()
        self._queue: collections.deque[tuple[float, T]] = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Hand a frame over; never blocks. False when the frame was dropped."""
        with self._cv:
            self.stats.received += 1
            accepted = True
            if len(self._queue) >= self.size:
                self.stats.dropped += 1
                if self.policy == "keep_oldest":
                    return False
                self._queue.popleft()
            self._queue.append((time.monotonic(), item))
            self._cv.notify()
            return accepted

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                t_in, item = self._queue.popleft()
                self._busy = True
            try:
                self.handle(item)
                self.stats.processed += 1
                self.latency.add((time.monotonic() - t_in) * 1e3)
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.on_error is not None:
                    self.on_error(item, exc)
                else:
                    log.exception("frame failed")
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or running (for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            self._queue.clear()
            self._cv.notify_all()
        self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)
