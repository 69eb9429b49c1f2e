"""The store going away: a 192 MiB transfer cut off by stopping Azurite, resumed
after a restart on the same data; polls of a stopped or hung store fail fast and
work again once it is back."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hades_perception.contract.bundle import open_bundle
from hades_perception.models.blobs import NotFoundError, StoreError
from hades_perception.models.cache import Fetched, ModelCache
from hades_perception.models.store import ModelStore
from tests.azurite import Azurite
from tests.store.conftest import BIG_BYTES, BIG_FILE, MODEL, BundleFactory, connect, container_name

BIG_VERSION = "2026.11.23-1-big"


class FetchInThread:
    """ModelCache.fetch running in a thread, so the test can cut the store off under it."""

    def __init__(self, fetch: Callable[[], Fetched]) -> None:
        self.result: Fetched | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fetch,), daemon=True)
        self._thread.start()

    def _run(self, fetch: Callable[[], Fetched]) -> None:
        try:
            self.result = fetch()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"fetch still running after {timeout} s"


def cut_off_once_bytes_arrive(server: Azurite, partial: Path, timeout: float = 60.0) -> int:
    """Stop the server as soon as the big file's partial download has bytes; returns the size then."""
    deadline = time.monotonic() + timeout
    while not (partial.exists() and partial.stat().st_size > 0):
        assert time.monotonic() < deadline, f"{partial} never got bytes"
        time.sleep(0.002)
    server.stop()
    return partial.stat().st_size


@pytest.fixture
def big_store(own_azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch, big_bundle: Path) -> ModelStore:
    """A private Azurite holding the 192 MiB version."""
    store = connect(own_azurite, monkeypatch, container)
    store.publish(big_bundle)
    return store


@pytest.mark.slow
def test_a_transfer_cut_off_fails_with_store_error_and_resumes_after_restart(
    own_azurite: Azurite, big_store: ModelStore, tmp_path: Path
):
    """Azurite stopped mid-transfer: fetch gives up with StoreError after its retries, keeping the partial file;
    restarted on the same folder, Azurite still holds the version and the next fetch resumes at that byte."""
    cache = ModelCache(tmp_path / "cache")
    partial = cache.root / MODEL / "partial" / BIG_VERSION / BIG_FILE
    waits: list[float] = []
    fetch = FetchInThread(lambda: cache.fetch(big_store, MODEL, BIG_VERSION, retries=1, sleep=waits.append))
    cut_off_once_bytes_arrive(own_azurite, partial)
    fetch.join()

    assert isinstance(fetch.error, StoreError), fetch.error
    assert waits == [1.0]  # two attempts with a backoff between, then the error
    kept = partial.stat().st_size
    assert 0 < kept < BIG_BYTES
    assert not cache.has(MODEL, BIG_VERSION)

    own_azurite.start()
    assert big_store.blobs.size(f"{MODEL}/versions/{BIG_VERSION}/{BIG_FILE}") == BIG_BYTES  # persisted in --location
    got = cache.fetch(big_store, MODEL, BIG_VERSION)
    assert got.resumed_at_bytes == kept and got.attempts == 1
    assert got.downloaded_bytes < sum(int(f["size"]) for f in open_bundle(got.path).raw["files"].values())
    assert (got.path / BIG_FILE).stat().st_size == BIG_BYTES


@pytest.mark.slow
def test_a_fetch_retrying_while_the_store_restarts_resumes_and_verifies(
    own_azurite: Azurite, big_store: ModelStore, tmp_path: Path
):
    """Azurite stopped mid-transfer, restarted while the fetch backs off: the same fetch call resumes and verifies."""
    cache = ModelCache(tmp_path / "cache")
    partial = cache.root / MODEL / "partial" / BIG_VERSION / BIG_FILE

    def back_off_while_restarting(seconds: float) -> None:
        if own_azurite.proc is None:
            own_azurite.start()

    fetch = FetchInThread(lambda: cache.fetch(big_store, MODEL, BIG_VERSION, sleep=back_off_while_restarting))
    kept = cut_off_once_bytes_arrive(own_azurite, partial)
    fetch.join()

    assert fetch.error is None, fetch.error
    got = fetch.result
    assert got is not None and got.attempts == 2
    assert kept <= got.resumed_at_bytes < BIG_BYTES
    assert cache.has(MODEL, BIG_VERSION) and open_bundle(got.path).version == BIG_VERSION  # every sha256 checked


@pytest.fixture
def polled(
    own_azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch, make_bundle: BundleFactory
) -> tuple[ModelStore, str]:
    """A private Azurite with a promoted channel, and the pointer's ETag a node last saw."""
    store = connect(own_azurite, monkeypatch, container)
    store.publish(make_bundle("2026.11.25-1"))
    store.promote(MODEL, "2026.11.25-1", "canary", "first", by="alice")
    got = store.pointer(MODEL, "canary")
    assert got is not None
    return store, got[1]


def test_a_poll_of_a_stopped_store_fails_within_seconds_and_works_after_restart(
    own_azurite: Azurite, polled: tuple[ModelStore, str]
):
    """With Azurite stopped, pointer_if_changed raises StoreError in under 3 s; restarted, it answers 'unchanged'."""
    store, etag = polled
    own_azurite.stop()
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="unreachable"):
        store.pointer_if_changed(MODEL, "canary", etag)
    assert time.monotonic() - t0 < 3.0
    own_azurite.start()
    assert store.pointer_if_changed(MODEL, "canary", etag) is None
    store.promote(MODEL, "2026.11.25-1", "production", "store is back", by="alice")
    got = store.pointer_if_changed(MODEL, "production", None)
    assert got is not None and got[0].reason == "store is back"


@pytest.mark.slow
def test_a_poll_of_a_hung_store_fails_within_fifteen_seconds(own_azurite: Azurite, polled: tuple[ModelStore, str]):
    """With Azurite paused (connections accepted, never answered), a poll raises StoreError in under 15 s."""
    store, etag = polled
    assert own_azurite.proc is not None
    os.kill(own_azurite.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="unreachable"):
            store.pointer_if_changed(MODEL, "canary", etag)
        assert time.monotonic() - t0 < 15.0
    finally:
        os.kill(own_azurite.proc.pid, signal.SIGCONT)
    assert store.pointer_if_changed(MODEL, "canary", etag) is None


def test_a_container_that_does_not_exist_is_an_unreachable_store_not_a_missing_channel(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """A misnamed or deleted container: polls and fetches raise StoreError (retry later), never NotFoundError
    (which would read as 'channel never set' or 'version not published')."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    store = ModelStore.open(f"azure://{container_name('no-such-container')}")
    for poll in (lambda: store.pointer(MODEL, "canary"), lambda: store.pointer_if_changed(MODEL, "canary", None)):
        with pytest.raises(StoreError, match="container does not exist") as failure:
            poll()
        assert not isinstance(failure.value, NotFoundError)
    with pytest.raises(StoreError, match="container does not exist") as failure:
        ModelCache(tmp_path / "cache").fetch(store, MODEL, "2026.11.25-1", retries=0)
    assert not isinstance(failure.value, NotFoundError)
