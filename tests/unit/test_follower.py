"""Following a store channel with real ONNX Runtime pipelines: a promoted version is
fetched, verified, loaded, warmed up and golden-checked before it is handed over;
what fails is never served nor retried until the channel moves; an unreachable store
is survived; pins hold; start-up works from the cache without a store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hades_perception.contract.signing import Ed25519PublicKey, generate_keypair, load_trusted_keys
from hades_perception.inference.loading import load_pipeline
from hades_perception.inference.pipeline import Pipeline
from hades_perception.models.cache import ModelCache
from hades_perception.models.follower import STAGES, Attempt, ModelFollower
from hades_perception.models.store import ModelStore
from hades_perception.serving.slot import ServingSlot
from hades_perception.serving.worker import InferenceWorker
from tests.bundles import NOT_ABOUT_SPEED_MS, SHIPPED, failing_golden_version, new_version
from tests.unit.test_model_store import MODEL, V1, V2, V3
from tests.unit.test_worker import camera

R = TypeVar("R")

BAD = "2026.11.23-2"  # loads, matches its checksums, fails its golden check
CPU = ("CPUExecutionProvider",)


class Server:
    """What an adapter does around a follower: a ServingSlot serving one pipeline, which
    records the versions it was asked to load and the installs it heard of."""

    def __init__(
        self, bundle: Path | None = SHIPPED, worker: InferenceWorker[Any] | None = None, precision: str = "fp32"
    ) -> None:
        self.precision = precision  # auto: what nodes serve (the int8 variant, which passed its gate)
        self.loads: list[str] = []  # versions load() was asked for, in order
        self.swaps: list[Attempt] = []
        self.slot = ServingSlot(self.load, worker)
        if bundle:
            self.slot.install(Pipeline.from_bundle(bundle, CPU), Attempt(bundle.name, "bundle", ok=True))
        self.slot.add_listener(lambda _new, _old, attempt: self.swaps.append(attempt))

    def load(self, path: Path) -> Pipeline:
        self.loads.append(path.name)
        return load_pipeline(path, providers=CPU, precision=self.precision, verified=True)

    def version(self) -> str:
        return self.slot.version


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {
        V1: SHIPPED,
        V2: new_version(d / V2, V2),
        V3: new_version(d / V3, V3),
        BAD: failing_golden_version(d / BAD, BAD),
    }


@pytest.fixture(scope="module")
def store(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """V1, V2, V3 and BAD published; each test moves a channel of its own."""
    s = ModelStore.open(tmp_path_factory.mktemp("store"))
    for b in bundles.values():
        s.publish(b)
    return s


def own_store(tmp_path: Path, bundles: dict[str, Path]) -> ModelStore:
    """A store this test may break: V1 and V2 published."""
    s = ModelStore.open(tmp_path / "store")
    s.publish(bundles[V1])
    s.publish(bundles[V2])
    return s


def follow(
    store: ModelStore,
    tmp_path: Path,
    server: Server,
    channel: str,
    *,
    trusted: dict[str, Ed25519PublicKey] | None = None,
    poll_period: float = 10.0,
    latency_budget_ms: float | None = NOT_ABOUT_SPEED_MS,
    fetch_retries: int = 4,
    max_golden_wait_s: float = 5.0,
) -> ModelFollower:
    """A follower wired to `server`'s slot as the node wires it, with its cache in tmp_path/cache."""
    return ModelFollower(
        store,
        ModelCache(tmp_path / "cache"),
        MODEL,
        channel,
        server.slot,
        trusted=trusted,
        poll_period=poll_period,
        latency_budget_ms=latency_budget_ms,
        fetch_retries=fetch_retries,
        max_golden_wait_s=max_golden_wait_s,
    )


def settled_on_v1(store: ModelStore, follower: ModelFollower, channel: str) -> None:
    """The channel points at V1, which the server already serves: the first poll has nothing to do."""
    store.promote(MODEL, V1, channel, "what the robot runs", by="test")
    assert follower.poll_once() is None


def test_a_promoted_version_is_validated_and_handed_over_with_every_stage_timed(
    store: ModelStore, tmp_path: Path
) -> None:
    """Promote V2: one poll fetches, verifies, loads, warms up and golden-checks it, then hands it over."""
    server = Server()
    f = follow(store, tmp_path, server, "swap")
    settled_on_v1(store, f, "swap")
    assert server.loads == [] and server.swaps == []
    store.promote(MODEL, V2, "swap", "better shoots", by="ana")
    attempt = f.poll_once()
    assert attempt is not None and attempt.ok and attempt.error == ""
    assert server.version() == V2 and server.swaps == [attempt] and server.loads == [V2]
    assert list(attempt.stages_ms) == list(STAGES) and all(attempt.stages_ms[s] > 0 for s in STAGES)
    assert set(attempt.golden["mask_agreement"].values()) == {1.0}
    assert attempt.pointer_seen is not None and attempt.ready_at is not None
    assert attempt.pointer_seen <= attempt.ready_at
    assert (f.status.channel_version, f.status.store_reachable, f.status.last_attempt) == (V2, True, attempt)
    assert f.poll_once() is None and server.loads == [V2]  # nothing moved, nothing done
    remembered = f.cache.last_pointer(MODEL, "swap")
    assert remembered is not None and remembered.version == V2


def test_an_int8_version_is_held_to_its_own_golden_outputs_and_a_bad_one_is_still_refused(
    store: ModelStore, tmp_path: Path
) -> None:
    """As a node serves by default (precision auto: the int8 variant, which passed its gate):
    the follower checks a version's int8 model against the int8 golden outputs its export
    recorded, not against fp32's, which int8 need not match peak for peak."""
    server = Server(precision="auto")
    f = follow(store, tmp_path, server, "int8")
    settled_on_v1(store, f, "int8")
    store.promote(MODEL, V2, "int8", "the same weights, re-exported", by="ana")
    attempt = f.poll_once()
    assert attempt is not None and attempt.ok, attempt.error if attempt else None
    assert server.version() == V2 and server.slot.pipeline.engine.precision == "int8"
    assert set(attempt.golden["mask_agreement"].values()) == {1.0}
    store.promote(MODEL, BAD, "int8", "a bad one", by="ana")
    refused = f.poll_once()
    assert refused is not None and not refused.ok and "golden check failed" in refused.error
    assert server.version() == V2


def test_the_golden_passes_run_on_the_serving_thread_between_frames_and_their_wait_is_timed_apart(
    store: ModelStore, tmp_path: Path
) -> None:
    """With the adapter's worker in the slot, warm-up and validation never run beside a
    frame: they wait until the frame being served is done, and that wait is reported
    as waited_ms, not as model latency."""
    frame_running = threading.Event()
    release_frame = threading.Event()
    ran_on: list[str] = []

    def serve(_frame: str) -> None:
        frame_running.set()
        release_frame.wait(5)

    class Recording(InferenceWorker[str]):
        def run_when_idle(self, fn: Callable[[], R], not_after: float | None = None) -> R:
            def job() -> R:
                ran_on.append(threading.current_thread().name)
                return fn()

            if not release_frame.is_set():
                threading.Timer(0.5, release_frame.set).start()  # the frame ends 0.5 s after the job queued
            return super().run_when_idle(job, not_after)

    worker = Recording(serve)
    server = Server(worker=worker)
    try:
        f = follow(store, tmp_path, server, "between")
        settled_on_v1(store, f, "between")
        store.promote(MODEL, V2, "between", "better shoots", by="ana")
        worker.submit("frame")
        assert frame_running.wait(5)
        attempt = f.poll_once()
    finally:
        worker.close()
    assert attempt is not None and attempt.ok, attempt
    assert ran_on == ["inference", "inference"]  # warm-up and validation, on the worker
    assert attempt.waited_ms >= 400
    assert attempt.stages_ms["validation"] < attempt.golden["latency_ms"] + 1000
    assert server.version() == V2


def test_a_candidates_golden_passes_wait_for_gaps_one_bounded_time_in_all(store: ModelStore, tmp_path: Path) -> None:
    """A camera faster than the engine leaves no gap. Warm-up and validation then share
    one wait: the swap is late by max_golden_wait_s once, not once per pass."""
    # A frame every 20 ms against 50 ms per frame: always one waiting.
    worker: InferenceWorker[str] = InferenceWorker(lambda _frame: time.sleep(0.05), size=4)
    server = Server(worker=worker)
    try:
        f = follow(store, tmp_path, server, "busy", max_golden_wait_s=0.5)
        settled_on_v1(store, f, "busy")
        store.promote(MODEL, V2, "busy", "better shoots", by="ana")
        with camera(worker, period=0.02):
            time.sleep(0.1)
            attempt = f.poll_once()
    finally:
        worker.close()
    assert attempt is not None and attempt.ok, attempt
    # 0.5 s for the first pass, then the second runs after the frame in hand (50 ms);
    # a wait per pass would have been 1 s or more.
    assert 450 <= attempt.waited_ms < 900, attempt.waited_ms
    assert server.version() == V2


def test_a_version_failing_its_golden_check_is_never_served_nor_retried_until_the_channel_moves(
    store: ModelStore, tmp_path: Path
) -> None:
    """BAD loads but computes other masks: not handed over, not tried at later polls; a later good version swaps."""
    server = Server()
    f = follow(store, tmp_path, server, "bad")
    settled_on_v1(store, f, "bad")
    store.promote(MODEL, BAD, "bad", "new lights", by="ana")
    attempt = f.poll_once()
    assert attempt is not None and not attempt.ok and not attempt.retry
    assert "golden check failed" in attempt.error and "mask agrees" in attempt.error
    assert server.version() == V1 and server.swaps == [] and server.loads == [BAD]
    assert f.status.last_error.startswith(BAD)
    for _ in range(3):
        assert f.poll_once() is None
    assert server.loads == [BAD]
    store.promote(MODEL, V2, "bad", "BAD replaced", by="ana")
    good = f.poll_once()
    assert good is not None and good.ok and server.version() == V2 and f.status.last_error == ""


def test_a_version_too_slow_for_the_latency_budget_is_not_handed_over(store: ModelStore, tmp_path: Path) -> None:
    """With a 1 ms budget the golden run is too slow: the version is refused for latency alone."""
    server = Server()
    f = follow(store, tmp_path, server, "slow", latency_budget_ms=1.0)
    settled_on_v1(store, f, "slow")
    store.promote(MODEL, V2, "slow", "faster?", by="ana")
    attempt = f.poll_once()
    assert attempt is not None and not attempt.ok
    assert "over the budget of 1 ms" in attempt.error and "mask" not in attempt.error
    assert attempt.golden["latency_budget_ms"] == 1.0 and attempt.golden["latency_ms"] > 1.0
    assert server.version() == V1 and server.swaps == []


def test_an_unsigned_version_is_refused_before_loading_when_keys_are_trusted(store: ModelStore, tmp_path: Path) -> None:
    """A node that trusts keys never loads an unsigned version."""
    generate_keypair(tmp_path / "keys" / "ci")
    server = Server()
    f = follow(store, tmp_path, server, "signed", trusted=load_trusted_keys(tmp_path / "keys"))
    settled_on_v1(store, f, "signed")
    store.promote(MODEL, V2, "signed", "unsigned by mistake", by="ana")
    attempt = f.poll_once()
    assert attempt is not None and not attempt.ok and attempt.error.startswith("SignatureError")
    assert server.loads == [] and server.version() == V1


def test_an_unreachable_store_is_reported_and_followed_again_when_it_is_back(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Store folder renamed away: polls report it unreachable and keep serving; back, the move made meanwhile swaps."""
    store = own_store(tmp_path, bundles)
    server = Server()
    f = follow(store, tmp_path, server, "production")
    settled_on_v1(store, f, "production")
    (tmp_path / "store").rename(tmp_path / "away")
    for _ in range(2):
        assert f.poll_once() is None
    assert f.status.store_reachable is False and f.status.last_error.startswith("store: ")
    assert server.version() == V1 and server.loads == []
    ModelStore.open(tmp_path / "away").promote(MODEL, V2, "production", "while the robot was offline", by="ana")
    (tmp_path / "away").rename(tmp_path / "store")
    attempt = f.poll_once()
    assert attempt is not None and attempt.ok and server.version() == V2
    assert f.status.store_reachable is True and f.status.last_error == ""


def test_a_store_failing_mid_fetch_is_retried_at_the_next_poll(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Version files unreadable (a file where their folder was): the attempt is marked retry, the next poll succeeds."""
    store = own_store(tmp_path, bundles)
    server = Server()
    f = follow(store, tmp_path, server, "production", fetch_retries=0)
    settled_on_v1(store, f, "production")
    store.promote(MODEL, V2, "production", "newer", by="ana")
    versions = tmp_path / "store" / MODEL / "versions"
    versions.rename(tmp_path / "versions.away")
    versions.write_text("not a folder")
    attempt = f.poll_once()
    assert attempt is not None and not attempt.ok and attempt.retry and attempt.error.startswith("store: ")
    assert server.version() == V1
    versions.unlink()
    (tmp_path / "versions.away").rename(versions)
    again = f.poll_once()
    assert again is not None and again.ok and server.version() == V2


def test_at_start_up_the_channel_is_served_from_the_cache_when_the_store_is_gone(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A restarted node with its store gone serves the cached channel version, validated again; no cache, nothing."""
    store = own_store(tmp_path, bundles)
    store.promote(MODEL, V2, "production", "release", by="ana")
    first = follow(store, tmp_path, Server(None), "production").initial()
    assert first is not None and first.ok and first.stages_ms["download"] > 0
    (tmp_path / "store").rename(tmp_path / "away")
    server = Server(None)
    restarted = follow(store, tmp_path, server, "production")
    attempt = restarted.initial()
    assert attempt is not None and attempt.ok and attempt.reason == "start-up"
    assert server.version() == V2 and server.swaps == [attempt]  # installed in the slot
    assert attempt.stages_ms["download"] == 0 and attempt.stages_ms["validation"] > 0
    assert follow(store, tmp_path / "empty", Server(None), "production").initial() is None
    (tmp_path / "away").rename(tmp_path / "store")
    assert restarted.poll_once() is None and server.loads == [V2]  # back: already serving the channel


def test_at_start_up_a_store_folder_that_is_gone_is_reported_unreachable(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """initial() with the store folder gone says the store is unreachable, not that the channel was never set."""
    store = own_store(tmp_path, bundles)
    store.promote(MODEL, V1, "production", "release", by="ana")
    (tmp_path / "store").rename(tmp_path / "away")
    f = follow(store, tmp_path, Server(None), "production")
    assert f.initial() is None
    assert f.status.store_reachable is False


def test_a_garbled_channel_pointer_is_reported_and_followed_again_once_fixed(store: ModelStore, tmp_path: Path) -> None:
    """A truncated pointer file: start-up falls back, polls report it and keep serving, a reset channel is followed."""
    server = Server()
    f = follow(store, tmp_path, server, "garbled")
    store.blobs.write(store.channel_key(MODEL, "garbled"), b'{"model": "hades-seedlings", "version": "2026.11')
    assert f.initial() is None
    assert f.status.store_reachable is False and "pointer" in f.status.last_error
    assert f.poll_once() is None and f.status.store_reachable is False and "pointer" in f.status.last_error
    (Path(store.describe().removeprefix("file://")) / store.channel_key(MODEL, "garbled")).unlink()
    store.promote(MODEL, V1, "garbled", "pointer rewritten", by="ana")
    assert f.poll_once() is None and f.status.store_reachable is True and f.status.last_error == ""
    assert f.status.channel_version == V1 and server.loads == []


def test_a_pin_is_served_and_held_while_the_channel_moves_until_released(store: ModelStore, tmp_path: Path) -> None:
    """pin(V2) swaps to V2; the channel moving to V3 changes nothing; release() swaps to V3."""
    server = Server()
    f = follow(store, tmp_path, server, "pin")
    settled_on_v1(store, f, "pin")
    pinned = f.pin(V2)
    assert pinned.ok and pinned.reason == "pin" and server.version() == V2 and f.status.pinned == V2
    assert f.pin(V2).ok and server.loads == [V2]  # pinning what is served loads nothing
    unknown = f.pin("2099.01.01-1")
    assert not unknown.ok and f.status.pinned == V2 and server.version() == V2
    store.promote(MODEL, V3, "pin", "newer", by="ana")
    assert f.poll_once() is None and f.poll_once() is None
    assert server.version() == V2 and f.status.channel_version == V3
    released = f.release()
    assert released is not None and released.ok and released.reason == "channel"
    assert server.version() == V3 and f.status.pinned == ""
    assert server.loads == [V2, V3]


def test_the_background_thread_follows_the_channel_until_stopped(store: ModelStore, tmp_path: Path) -> None:
    """start() polls on its own thread; a promotion is served within a few poll periods; stop() ends it."""
    server = Server()
    f = follow(store, tmp_path, server, "thread", poll_period=0.05)
    settled_on_v1(store, f, "thread")
    f.start()
    try:
        store.promote(MODEL, V2, "thread", "newer", by="ana")
        deadline = time.monotonic() + 30
        while server.version() != V2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        f.stop()
    assert server.version() == V2 and server.loads == [V2]
    assert f._thread is not None and not f._thread.is_alive()
