"""The inference worker: a bounded frame queue with a drop policy, and background jobs
(a candidate model's golden passes) that run in the gaps between frames, never beside one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from hades_perception.serving.worker import InferenceWorker, Stats


class Recorder:
    """A frame handler that takes `seconds` per frame and records what ran, in order."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.ran: list[str] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def frame(self, item: str) -> None:
        self.gate.wait(5)
        time.sleep(self.seconds)
        with self.lock:
            self.ran.append(item)

    def job(self, name: str) -> str:
        with self.lock:
            self.ran.append(name)
        return name.upper()


@contextlib.contextmanager
def camera(worker: InferenceWorker[str], period: float = 0.02) -> Iterator[None]:
    """Frames every `period` s on a thread while the block runs: faster than a handler
    that takes longer, so a frame is always waiting."""
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.is_set():
            worker.submit(f"f{i}")
            i += 1
            time.sleep(period)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_keep_newest_drops_the_oldest_waiting_frame_and_counts_it() -> None:
    r = Recorder()
    r.gate.clear()  # hold the first frame so the others queue
    w = InferenceWorker(r.frame, size=1, policy="keep_newest")
    try:
        assert w.submit("a")
        time.sleep(0.1)  # "a" is running, held at the gate
        w.submit("b")
        w.submit("c")  # pushes "b" out
        r.gate.set()
        assert w.idle(5)
        assert r.ran == ["a", "c"]
        assert (w.stats.received, w.stats.processed, w.stats.dropped) == (3, 2, 1)
    finally:
        w.close()


def test_keep_oldest_refuses_a_frame_when_the_queue_is_full() -> None:
    r = Recorder()
    r.gate.clear()
    w = InferenceWorker(r.frame, size=1, policy="keep_oldest")
    try:
        w.submit("a")
        time.sleep(0.1)
        assert w.submit("b")
        assert not w.submit("c")
        r.gate.set()
        assert w.idle(5)
        assert r.ran == ["a", "b"] and w.stats.dropped == 1
    finally:
        w.close()


def test_a_job_waits_for_the_frames_queued_before_it_and_returns_its_result() -> None:
    r = Recorder(seconds=0.05)
    r.gate.clear()
    w = InferenceWorker(r.frame, size=4, policy="keep_oldest")
    try:
        w.submit("f1")
        time.sleep(0.05)
        w.submit("f2")
        w.submit("f3")
        got: list[str] = []
        caller = threading.Thread(target=lambda: got.append(w.run_when_idle(lambda: r.job("job"))))
        caller.start()
        time.sleep(0.1)
        r.gate.set()
        caller.join(5)
        assert got == ["JOB"]
        assert r.ran == ["f1", "f2", "f3", "job"]  # never beside a frame, never ahead of a waiting one
    finally:
        w.close()


def test_a_job_runs_between_two_frames_when_frames_keep_coming_past_its_deadline() -> None:
    r = Recorder(seconds=0.1)
    w = InferenceWorker(r.frame, size=1, policy="keep_newest")
    try:
        with camera(w):
            time.sleep(0.15)
            t0 = time.monotonic()
            assert w.run_when_idle(lambda: r.job("job"), not_after=time.monotonic() + 0.3) == "JOB"
            waited = time.monotonic() - t0
            assert 0.3 <= waited < 1.5  # deferred while frames waited, then not starved
            time.sleep(0.3)  # frames go on after it
            assert r.ran.index("job") not in (0, len(r.ran) - 1)  # between two frames
    finally:
        w.close()


def test_a_job_whose_deadline_passed_runs_even_behind_one_still_willing_to_wait() -> None:
    """The shadow's candidate and the serving candidate may both wait for gaps: each
    job keeps its own bound, whichever was queued first."""
    r = Recorder(seconds=0.1)
    w = InferenceWorker(r.frame, size=1, policy="keep_newest")
    patient_errors: list[Exception] = []

    def patient() -> None:
        try:
            w.run_when_idle(lambda: r.job("patient"), not_after=time.monotonic() + 60)
        except RuntimeError as exc:  # released by close()
            patient_errors.append(exc)

    waiting = threading.Thread(target=patient)
    try:
        with camera(w):
            time.sleep(0.15)
            waiting.start()
            time.sleep(0.05)
            t0 = time.monotonic()
            assert w.run_when_idle(lambda: r.job("due"), not_after=time.monotonic() + 0.3) == "DUE"
            assert time.monotonic() - t0 < 1.5
            assert "patient" not in r.ran
    finally:
        w.close()
        waiting.join(5)
    assert patient_errors or "patient" in r.ran  # it ran once frames stopped, or close() released it


def test_a_failing_job_raises_in_its_caller_and_the_worker_goes_on() -> None:
    r = Recorder()
    w = InferenceWorker(r.frame)
    try:
        with pytest.raises(ZeroDivisionError):
            w.run_when_idle(lambda: 1 / 0)
        w.submit("after")
        assert w.idle(5) and r.ran == ["after"]
    finally:
        w.close()


def test_closing_releases_a_caller_whose_job_never_ran() -> None:
    r = Recorder()
    r.gate.clear()  # a frame holds the worker for the whole test
    w = InferenceWorker(r.frame)
    w.submit("stuck")
    time.sleep(0.05)
    errors: list[Exception] = []

    def wait_for_job() -> None:
        try:
            w.run_when_idle(lambda: r.job("never"), not_after=time.monotonic() + 60)
        except RuntimeError as exc:
            errors.append(exc)

    caller = threading.Thread(target=wait_for_job)
    caller.start()
    time.sleep(0.05)
    closer = threading.Thread(target=w.close)
    closer.start()
    caller.join(2)
    assert not caller.is_alive() and "closed" in str(errors[0])
    r.gate.set()
    closer.join(5)
    assert "never" not in r.ran
    with pytest.raises(RuntimeError, match="closed"):
        w.run_when_idle(lambda: "late")


def test_latencies_and_counters_can_be_read_while_the_worker_writes_them():
    """Diagnostics read on the executor's thread while frames finish on the worker's:
    iterating a deque another thread appends to raises, so the window is locked."""
    from hades_perception.serving.worker import LatencyWindow

    window, stop, errors = LatencyWindow(size=50), threading.Event(), []

    def write() -> None:
        while not stop.is_set():
            window.add(1.0)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(2000):
            window.percentiles()
            window.rate_hz()
    except RuntimeError as exc:  # "deque mutated during iteration" before the lock
        errors.append(exc)
    finally:
        stop.set()
        writer.join()
    assert errors == [] and window.percentiles()["p50"] == 1.0

    worker: InferenceWorker[int] = InferenceWorker(lambda _i: None, size=4)
    try:
        for i in range(20):
            worker.submit(i)
        assert worker.idle(10)
        s = worker.snapshot()
        assert s.received == 20 and s.processed + s.dropped == 20 and s is not worker.stats
    finally:
        worker.close()


class TwoStages:
    """A first stage and a second stage that record when each ran, per frame."""

    def __init__(self, first: float, second: float, fail: str = "") -> None:
        self.first, self.second, self.fail = first, second, fail
        self.spans: dict[tuple[str, str], tuple[float, float]] = {}
        self.errors: list[tuple[str, str]] = []

    def start(self, item: str) -> str:
        t = time.monotonic()
        time.sleep(self.first)
        self.spans[("first", item)] = (t, time.monotonic())
        return item.upper()

    def finish(self, item: str, mid: str) -> None:
        t = time.monotonic()
        assert mid == item.upper()  # the first stage's result, for the same frame
        time.sleep(self.second)
        if item == self.fail:
            raise ValueError(f"{item} failed")
        self.spans[("second", item)] = (t, time.monotonic())

    def on_error(self, item: str, exc: Exception) -> None:
        self.errors.append((item, str(exc)))

    def serve(self, items: list[str], size: int) -> Stats:
        """The items through a two-stage worker until it is idle; its counters then."""
        w: InferenceWorker[str] = InferenceWorker(self.start, finish=self.finish, size=size, on_error=self.on_error)
        try:
            for item in items:
                w.submit(item)
            assert w.idle(10)  # idle only once the second stage has finished too
            assert w.latency.percentiles() or not self.spans
            return w.snapshot()
        finally:
            w.close()


class TestTwoStages:
    def test_the_second_stage_of_a_frame_runs_while_the_first_handles_the_next(self) -> None:
        s = TwoStages(0.1, 0.1)
        stats = s.serve([f"f{i}" for i in range(4)], size=4)
        for i in range(3):  # frame i's second stage overlaps frame i+1's first
            second, first_next = s.spans[("second", f"f{i}")], s.spans[("first", f"f{i + 1}")]
            assert second[0] < first_next[1] and first_next[0] < second[1]
        assert stats.processed == 4

    def test_nothing_is_dropped_between_the_stages_when_the_second_is_slower(self) -> None:
        s = TwoStages(0.01, 0.08)
        stats = s.serve([f"f{i}" for i in range(6)], size=8)
        assert sorted(k[1] for k in s.spans if k[0] == "second") == [f"f{i}" for i in range(6)]
        assert (stats.received, stats.processed, stats.dropped) == (6, 6, 0)

    def test_a_frame_failing_in_the_second_stage_is_counted_and_reported_and_the_next_is_served(self) -> None:
        s = TwoStages(0.0, 0.01, fail="bad")
        stats = s.serve(["bad", "good"], size=4)
        assert s.errors == [("bad", "bad failed")] and ("second", "good") in s.spans
        assert (stats.processed, stats.errors, stats.last_error) == (1, 1, "ValueError: bad failed")

    def test_a_background_job_after_a_frame_runs_at_once_on_the_first_stage(self) -> None:
        # Both stages wait on one condition: a job's wake-up must reach the first stage,
        # not be taken by the second, which has nothing to do (it then waited until the
        # next frame, 120 s in a node test).
        s = TwoStages(0.0, 0.02)
        w: InferenceWorker[str] = InferenceWorker(s.start, finish=s.finish)
        ran: list[str] = []
        try:
            w.submit("f0")
            assert w.idle(5)
            time.sleep(0.1)  # both stages back to waiting, the second last
            job = threading.Thread(target=lambda: ran.append(w.run_when_idle(lambda: "job", time.monotonic() + 60)))
            job.start()
            job.join(2.0)
        finally:
            w.close()
        assert ran == ["job"]

    def test_a_background_job_waits_while_the_second_stage_finishes_a_frame(self) -> None:
        # A job never runs beside a frame: on a machine whose engine takes every core it
        # would slow the frame down, and a golden check would be timed slow itself.
        s = TwoStages(0.0, 0.3)
        w: InferenceWorker[str] = InferenceWorker(s.start, finish=s.finish)
        try:
            w.submit("f0")
            time.sleep(0.05)  # f0 is in its second stage
            started = w.run_when_idle(time.monotonic, time.monotonic() + 60)
        finally:
            w.close()
        assert started >= s.spans[("second", "f0")][1]

    def test_an_error_handler_that_fails_does_not_stop_the_worker(self) -> None:
        s = TwoStages(0.0, 0.0, fail="bad")

        def on_error(item: str, exc: Exception) -> None:
            raise RuntimeError("the handler broke")

        w: InferenceWorker[str] = InferenceWorker(s.start, finish=s.finish, on_error=on_error, size=4)
        try:
            w.submit("bad")
            w.submit("good")
            assert w.idle(5)
        finally:
            w.close()
        assert ("second", "good") in s.spans
