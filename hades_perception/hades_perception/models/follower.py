"""Following a store channel: poll, fetch, verify, load, warm up, validate, hand over.

This is the swap logic, with no rclpy in it. It talks to one object, the adapter's
ServingSlot (serving/slot.py): the slot builds a candidate on the adapter's engine
settings (the folder was verified here, so it need not re-check it), runs the
candidate's golden passes between two frames on the adapter's inference thread, and
installs it. Everything else slow happens on the follower's own thread while the
current model keeps serving.

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
from dataclasses import dataclass
from typing import Any

from hades_perception.contract.bundle import BundleError
from hades_perception.contract.golden import check_golden, int8_golden_hint
from hades_perception.contract.signing import Ed25519PublicKey
from hades_perception.models.blobs import StoreError
from hades_perception.models.cache import ModelCache
from hades_perception.models.store import ModelStore, Pointer
from hades_perception.serving.slot import STAGES, Attempt, ServingSlot
from hades_perception.serving.worker import DEFAULT_MAX_DEFER_S

__all__ = ["STAGES", "Attempt", "FollowerStatus", "ModelFollower"]
log = logging.getLogger(__name__)


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
        slot: ServingSlot,
        *,
        trusted: dict[str, Ed25519PublicKey] | None = None,
        poll_period: float = 10.0,
        latency_budget_ms: float | None = None,
        fetch_retries: int = 4,
        max_golden_wait_s: float = DEFAULT_MAX_DEFER_S,
    ) -> None:
        """Follow `channel` of `model` into `slot`. A candidate's golden passes wait for
        gaps between frames `max_golden_wait_s` in all, then run between two frames anyway."""
        self.store, self.cache, self.model, self.channel, self.slot = store, cache, model, channel, slot
        self.trusted, self.poll_period, self.latency_budget_ms = trusted, poll_period, latency_budget_ms
        self.fetch_retries = fetch_retries
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
            pipeline = self.slot.load(path)
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
                return self.slot.run_between_frames(lambda: candidate(image), not_after)

            # Held to the golden outputs of the model file it runs (an int8 variant to its own).
            report = check_golden(path, between_frames, self.latency_budget_ms, candidate.engine.precision)
            total = (time.perf_counter() - t0) * 1e3
            attempt.waited_ms = report.figures.get("waited_ms", 0.0)
            attempt.stages_ms["warmup"] = report.figures.get("warmup_ms", 0.0)
            attempt.stages_ms["validation"] = total - attempt.stages_ms["warmup"] - attempt.waited_ms
            attempt.golden = {"latency_ms": report.latency_ms, **report.figures}
            if not report.ok:
                hint = int8_golden_hint(candidate.manifest, candidate.engine.precision)
                raise BundleError("golden check failed: " + "; ".join(report.problems) + hint)
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
            self.slot.install(pipeline, attempt)
            self.status.last_error = ""
            self.cache.prune(self.model, {version, self.slot.version, self.status.pinned})
        return attempt

    # --- start-up -----------------------------------------------------------------
    def initial(self) -> Attempt | None:
        """Install what to serve at start-up: the channel's version, from the cache when
        it is there (no network needed), else downloaded. Returns the attempt, or None
        when there is no pointer; when it fails the caller serves its fallback bundle."""
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
        if pipeline is not None:
            self.slot.install(pipeline, attempt)
        return attempt

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
                log.warning("model store unreachable: %s; serving %s", exc, self.slot.version)
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
            if target == self.slot.version:
                self._settled_etag = self._etag
                return None
            attempt = self._try(target, "channel", seen)
            if not attempt.retry:
                self._settled_etag = self._etag  # never retry a failed version for this pointer
            return attempt

    def pin(self, version: str) -> Attempt:
        """Serve `version` regardless of the channel, until release()."""
        with self._busy:
            if version == self.slot.version:
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

    def pin_or_release(self, version: str) -> tuple[bool, str]:
        """An operator's request (the node's pin_model service): pin `version`, or release
        the pin when it is empty. Returns (success, a message for the operator)."""
        if version:
            attempt = self.pin(version)
            return attempt.ok, f"pinned to {version}" if attempt.ok else attempt.error
        released = self.release()
        message = "following channel " + self.channel
        if released is not None and not released.ok:
            message += f"; its version {released.version} failed: {released.error}"
        return released is None or released.ok, message

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
