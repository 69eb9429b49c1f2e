"""Following a store channel: poll, fetch, verify, load, warm up, validate, hand over.

This is the swap logic, with no rclpy in it. The node gives it a `load` function
(bundle folder -> pipeline; the folder was verified here, so `load` need not re-check
it) and an `on_ready` callback that installs the new pipeline between two frames;
everything slow happens on the follower's own thread while the current model keeps
serving, except the candidate's golden passes, which go through `run_idle` (in the
node: the inference thread, between frames).

Rules:
- A candidate is handed over only after every check passed: sha256 of every
  file, the signature when keys are trusted, a successful load, and the golden
  sample within tolerance and latency budget.
- A candidate that fails a check is not tried again until the channel pointer
  changes (a person moved it). A store that cannot be reached is retried at the
  next poll, and downloads resume where they stopped.
- A pinned version wins over the channel until the pin is released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hades_perception.blobs import StoreError
from hades_perception.bundle import BundleError
from hades_perception.golden import check_golden
from hades_perception.model_cache import ModelCache
from hades_perception.signing import Ed25519PublicKey
from hades_perception.store import ModelStore, Pointer
from hades_perception.worker import DEFAULT_MAX_DEFER_S

log = logging.getLogger(__name__)
STAGES = ("download", "verify", "load", "warmup", "validation")


@dataclass
class Attempt:
    """One try at making a version servable, with where the time went."""

    version: str
    reason: str  # "channel", "pin", "start-up"
    ok: bool = False
    error: str = ""
    retry: bool = False  # the store failed, not the version: try again at the next poll
    stages_ms: dict[str, float] = field(default_factory=dict)
    pointer_seen: float | None = None  # time.time() when the poll saw the pointer move
    ready_at: float | None = None  # time.time() when the candidate passed every check
    waited_ms: float = 0.0  # how long the golden passes waited for a gap between frames
    golden: dict[str, Any] = field(default_factory=dict)


@dataclass
class FollowerStatus:
    store: str
    model: str
    channel: str
    channel_version: str = ""
    pinned: str = ""
    store_reachable: bool | None = None
    last_poll: float | None = None
    last_error: str = ""
    last_attempt: Attempt | None = None


class ModelFollower:
    def __init__(
        self,
        store: ModelStore | None,
        cache: ModelCache,
        model: str,
        channel: str,
        *,
        load: Callable[[Path], Any],
        on_ready: Callable[[Any, Attempt], None],
        serving_version: Callable[[], str],
        trusted: dict[str, Ed25519PublicKey] | None = None,
        poll_period: float = 10.0,
        latency_budget_ms: float | None = None,
        fetch_retries: int = 4,
        run_idle: Callable[[Callable[[], Any], float], Any] | None = None,
        max_golden_wait_s: float = DEFAULT_MAX_DEFER_S,
    ) -> None:
        """`run_idle(fn, not_after)` runs fn where it does not compete with serving, at
        the latest from `not_after` (time.monotonic()), and returns its result; the node
        passes its worker's run_when_idle, so a candidate's warm-up and golden check run
        between frames. By default they run here. An attempt's golden passes wait for
        such moments `max_golden_wait_s` in all, then run between two frames anyway."""
        self.store, self.cache, self.model, self.channel = store, cache, model, channel
        self.load, self.on_ready, self.serving_version = load, on_ready, serving_version
        self.trusted, self.poll_period, self.latency_budget_ms = trusted, poll_period, latency_budget_ms
        self.fetch_retries = fetch_retries
        self.run_idle = run_idle or (lambda fn, _not_after: fn())
        self.max_golden_wait_s = max_golden_wait_s
        self.status = FollowerStatus(store.describe() if store else "", model, channel)
        self._etag: str | None = None
        self._pointer: Pointer | None = None
        self._settled_etag: str | None = None  # the pointer state already acted on
        self._busy = threading.Lock()  # one candidate at a time (poll or pin)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the candidate pipeline --------------------------------------------------
    def prepare(self, version: str, reason: str, pointer_seen: float | None = None) -> tuple[Any, Attempt]:
        """Fetch, verify, load, warm up and validate `version`. Returns the loaded
        pipeline (None on failure) and the attempt, which says what happened."""
        attempt = Attempt(version, reason, pointer_seen=pointer_seen)
        pipeline = None
        try:
            if self.store is not None:
                fetched = self.cache.fetch(self.store, self.model, version, self.trusted, retries=self.fetch_retries)
                attempt.stages_ms.update(download=fetched.download_ms, verify=fetched.verify_ms)
                path = fetched.path
            else:
                path = self.cache.bundle_path(self.model, version)
                t0 = time.perf_counter()
                self.cache.verify(path, self.trusted)
                attempt.stages_ms.update(download=0.0, verify=(time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            pipeline = self.load(path)
            attempt.stages_ms["load"] = (time.perf_counter() - t0) * 1e3
            candidate = pipeline
            t0 = time.perf_counter()
            # Each golden pass runs where it does not slow a frame down; the wait for that
            # moment is counted apart from the pass, and bounded once for the attempt,
            # from when the first pass asks.
            not_after: float | None = None

            def between_frames(image: Any) -> Any:
                nonlocal not_after
                if not_after is None:
                    not_after = time.monotonic() + self.max_golden_wait_s
                return self.run_idle(lambda: candidate(image), not_after)

            report = check_golden(path, between_frames, self.latency_budget_ms)
            total = (time.perf_counter() - t0) * 1e3
            attempt.waited_ms = report.figures.get("waited_ms", 0.0)
            attempt.stages_ms["warmup"] = report.figures.get("warmup_ms", 0.0)
            attempt.stages_ms["validation"] = total - attempt.stages_ms["warmup"] - attempt.waited_ms
            attempt.golden = {"latency_ms": report.latency_ms, **report.figures}
            if not report.ok:
                raise BundleError("golden check failed: " + "; ".join(report.problems))
            attempt.ok, attempt.ready_at = True, time.time()
        except StoreError as exc:
            attempt.error, attempt.retry = f"store: {exc}", True
        except Exception as exc:  # a version that cannot be served, whatever the reason
            attempt.error = f"{type(exc).__name__}: {exc}"
        if not attempt.ok:
            pipeline = None
            log.warning("%s %s not served (%s): %s", self.model, version, reason, attempt.error)
        self.status.last_attempt = attempt
        if attempt.error:
            self.status.last_error = f"{version}: {attempt.error}"
        return pipeline, attempt

    def _try(self, version: str, reason: str, pointer_seen: float | None = None) -> Attempt:
        pipeline, attempt = self.prepare(version, reason, pointer_seen)
        if pipeline is not None:
            self.on_ready(pipeline, attempt)
            self.status.last_error = ""
            self.cache.prune(self.model, {version, self.serving_version(), self.status.pinned})
        return attempt

    # --- start-up -----------------------------------------------------------------
    def initial(self) -> tuple[Any, Attempt] | None:
        """What to serve at start-up: the channel's version, from the cache when it
        is there (no network needed), else downloaded. None when neither works;
        the caller then serves its fallback bundle."""
        pointer = None
        if self.store is not None:
            try:
                got = self.store.pointer(self.model, self.channel)
                self.status.store_reachable = True
                if got:
                    pointer, self._etag = got
                    self.cache.remember_pointer(pointer)
            except StoreError as exc:
                self.status.store_reachable, self.status.last_error = False, f"store: {exc}"
                log.warning("model store unreachable at start-up (%s); using the cache", exc)
        pointer = pointer or self.cache.last_pointer(self.model, self.channel)
        if pointer is None:
            return None
        self._pointer, self.status.channel_version = pointer, pointer.version
        pipeline, attempt = self.prepare(pointer.version, "start-up")
        if attempt.ok or not attempt.retry:
            self._settled_etag = self._etag
        return (pipeline, attempt) if pipeline is not None else None

    # --- following ------------------------------------------------------------------
    def poll_once(self) -> Attempt | None:
        """One cheap conditional read of the pointer; acts when it moved."""
        if self.store is None:
            return None
        self.status.last_poll = time.time()
        try:
            got = self.store.pointer_if_changed(self.model, self.channel, self._etag)
        except StoreError as exc:
            if self.status.store_reachable is not False:
                log.warning("model store unreachable: %s; serving %s", exc, self.serving_version())
            self.status.store_reachable, self.status.last_error = False, f"store: {exc}"
            return None
        if self.status.store_reachable is False:
            log.info("model store reachable again")
            self.status.last_error = ""
        self.status.store_reachable = True
        seen = time.time()
        if got is not None:
            self._pointer, self._etag = got
            self.status.channel_version = got[0].version
            self.cache.remember_pointer(got[0])
            log.info("channel %s now points at %s (was %s)", self.channel, got[0].version, got[0].previous)
        with self._busy:
            if self._pointer is None or self.status.pinned or self._settled_etag == self._etag:
                return None
            target = self._pointer.version
            if target == self.serving_version():
                self._settled_etag = self._etag
                return None
            attempt = self._try(target, "channel", seen)
            if not attempt.retry:
                self._settled_etag = self._etag  # never retry a failed version for this pointer
            return attempt

    def pin(self, version: str) -> Attempt:
        """Serve `version` regardless of the channel, until release()."""
        with self._busy:
            if version == self.serving_version():
                self.status.pinned = version
                return Attempt(version, "pin", ok=True)
            attempt = self._try(version, "pin")
            if attempt.ok:
                self.status.pinned = version
            return attempt

    def release(self) -> Attempt | None:
        """Follow the channel again; swaps back at once if it points elsewhere."""
        with self._busy:
            self.status.pinned = ""
            self._settled_etag = None
        return self.poll_once()

    def start(self) -> None:
        if self.store is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"follow-{self.channel}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the follower must outlive any surprise; the node keeps serving
                log.exception("model follower: unexpected error")
            self._stop.wait(self.poll_period)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
