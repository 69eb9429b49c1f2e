"""A bounded frame queue and the worker thread that runs inference off the executor.

The camera can be faster than the engine. Then the queue's policy decides:
`keep_newest` (default) drops the oldest waiting frame so latency stays bounded
and the robot sees the freshest plate; `keep_oldest` refuses the new frame.
Every drop is counted. No rclpy here: the node passes in what to do per frame.
A frame's work may be two stages on two threads (`finish`): the engine of one frame
then overlaps the postprocessing of the one before.

The first thread also runs background jobs (a candidate model's warm-up and golden
check) in the gaps between frames, one at a time, when no stage has a frame: on a
machine where the engine takes every core, a job run beside a frame would slow that
frame down (and be timed slow itself), while a job run in a gap delays at most the one
frame that arrives during it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
POLICIES = ("keep_newest", "keep_oldest")
DEFAULT_MAX_DEFER_S = 5.0  # how long a background job waits for a gap between frames


@dataclass
class Stats:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str = ""


class _Job:
    """A background job handed to the worker; the caller waits on `done`."""

    def __init__(self, fn: Callable[[], object], deadline: float) -> None:
        self.fn, self.deadline = fn, deadline
        self.done = threading.Event()
        self.result: object = None
        self.error: Exception | None = None


class LatencyWindow:
    """The last N latencies (ms) for percentiles; bounded memory. Written by the worker
    thread, read by another (diagnostics): a lock, since iterating a deque that another
    thread appends to raises."""

    def __init__(self, size: int = 500) -> None:
        self._lock = threading.Lock()
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._times: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)
            self._times.append(time.monotonic())

    def percentiles(self) -> dict[str, float]:
        with self._lock:
            v = np.fromiter(self._values, float)
        if not v.size:
            return {}
        return {
            "p50": float(np.percentile(v, 50)),
            "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)),
            "max": float(v.max()),
        }

    def rate_hz(self, horizon_s: float = 10.0) -> float:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class InferenceWorker(Generic[T]):
    """Runs `handle(item)` for queued items on its own thread. With `finish`, a frame's work
    is two stages on two threads: `finish(item, handle(item))` runs on the second while the
    first handles the next item (a node's engine overlaps the previous frame's
    postprocessing). Nothing is dropped between the stages: the first waits while the
    second still has an item waiting. Counters and latency are taken when a frame is
    finished; an error in either stage goes to `on_error`."""

    def __init__(
        self,
        handle: Callable[[T], Any],
        *,
        finish: Callable[[T, Any], None] | None = None,
        size: int = 1,
        policy: str = "keep_newest",
        on_error: Callable[[T, Exception], None] | None = None,
        name: str = "inference",
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"queue policy {policy!r} is not one of {POLICIES}")
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.handle, self.finish, self.on_error = handle, finish, on_error
        self.size, self.policy = size, policy
        self.stats = Stats()
        self.latency = LatencyWindow()
        self._queue: collections.deque[tuple[float, T]] = collections.deque()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self._busy = False
        self._handoff: tuple[float, T, Any] | None = None  # first stage done, second to take it
        self._finishing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._second: threading.Thread | None = None
        if finish is not None:
            self._second = threading.Thread(target=self._run_finish, name=f"{name}-finish", daemon=True)
            self._second.start()

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
            self._cv.notify_all()  # two threads may wait on it (with `finish`)
            return accepted

    def run_when_idle(self, fn: Callable[[], R], not_after: float | None = None) -> R:
        """Run `fn` on the worker thread when no frame is waiting and return its result
        (or raise its exception). Blocks the caller, which must not be the worker.
        When frames keep coming until `not_after` (time.monotonic(); by default
        DEFAULT_MAX_DEFER_S from now), it runs between two of them anyway, so
        background work is never starved by a camera faster than the engine. Jobs that
        belong together (a candidate's warm-up and validation) share one `not_after`,
        so together they wait at most that long."""
        if threading.current_thread() in (self._thread, self._second):
            return fn()  # from a frame's own stage: waiting for a gap would wait for itself
        job = _Job(fn, time.monotonic() + DEFAULT_MAX_DEFER_S if not_after is None else not_after)
        with self._cv:
            if self._stop:
                raise RuntimeError("the inference worker is closed")
            self._jobs.append(job)
            self._cv.notify_all()  # two threads may wait on it (with `finish`)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _next(self) -> tuple[float, T] | _Job | None:
        """The next frame, or a job in a gap: no frame waits and the second stage is idle
        (so a job never runs beside a frame); or a job that waited long enough, the one
        with the earliest deadline, whichever caller queued it first."""
        with self._cv:
            while True:
                if self._stop:
                    return None
                now = time.monotonic()
                due = min(self._jobs, key=lambda job: job.deadline) if self._jobs else None
                overdue = due is not None and due.deadline <= now
                gap = not self._queue and self._handoff is None and not self._finishing
                if due is not None and (overdue or gap):
                    job = due if overdue else self._jobs[0]
                    self._jobs.remove(job)
                    self._busy = True
                    return job
                if self._queue:
                    self._busy = True
                    return self._queue.popleft()
                self._cv.wait(None if due is None else due.deadline - now)

    def _run_job(self, job: _Job) -> None:
        try:
            job.result = job.fn()
        except Exception as exc:  # handed to the caller, who decides
            job.error = exc
        finally:
            job.done.set()

    def _run_item(self, t_in: float, item: T) -> None:
        try:
            mid = self.handle(item)
            if self.finish is None:
                self._done(t_in)
            else:
                self._hand_on(t_in, item, mid)
        except Exception as exc:
            self._failed(item, exc)

    def _run(self) -> None:
        """The first stage's thread: jobs and items as _next gives them, one at a time;
        idle again after each, whatever it raised."""
        while True:
            got = self._next()
            if got is None:
                return
            try:
                if isinstance(got, _Job):
                    self._run_job(got)
                else:
                    self._run_item(*got)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _hand_on(self, t_in: float, item: T, mid: Any) -> None:
        """To the second stage; waits while it still has an item waiting."""
        with self._cv:
            while self._handoff is not None and not self._stop:
                self._cv.wait()
            if not self._stop:
                self._handoff = (t_in, item, mid)
                self._cv.notify_all()

    def _run_finish(self) -> None:
        assert self.finish is not None
        while True:
            with self._cv:
                while self._handoff is None and not self._stop:
                    self._cv.wait()
                handoff = self._handoff
                if self._stop or handoff is None:
                    return
                t_in, item, mid = handoff
                self._handoff, self._finishing = None, True
                self._cv.notify_all()
            try:
                self.finish(item, mid)
                self._done(t_in)
            except Exception as exc:
                self._failed(item, exc)
            finally:
                with self._cv:
                    self._finishing = False
                    self._cv.notify_all()

    def _done(self, t_in: float) -> None:
        self.latency.add((time.monotonic() - t_in) * 1e3)
        with self._cv:
            self.stats.processed += 1

    def _failed(self, item: T, exc: Exception) -> None:
        with self._cv:
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self.on_error is None:
            log.exception("frame failed")
            return
        try:
            self.on_error(item, exc)
        except Exception:  # a failing handler must not take the thread (and the frames) with it
            log.exception("the error handler failed on a frame that failed with %r", exc)

    def snapshot(self) -> Stats:
        """A copy of the counters, consistent with each other (for another thread to read)."""
        with self._cv:
            return dataclasses.replace(self.stats)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or running (for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._jobs or self._busy or self._handoff is not None or self._finishing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            self._queue.clear()
            jobs, self._jobs = list(self._jobs), collections.deque()
            self._cv.notify_all()
        for job in jobs:  # their callers must not wait for ever
            job.error = RuntimeError("the inference worker closed before the job ran")
            job.done.set()
        self._thread.join(timeout)
        if self._second is not None:
            self._second.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)
