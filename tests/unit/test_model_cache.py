"""The node's model cache: download, verify, then use. Resuming cut-off transfers,
retrying an unreachable store with backoff, refusing corrupt or unsigned versions
before they are ever used, and the pointers kept for an offline start."""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from pathlib import Path
from typing import IO

import pytest

from hades_perception.contract.bundle import MANIFEST, BundleError, open_bundle
from hades_perception.contract.signing import (
    SIGNATURE_FILE,
    Ed25519PublicKey,
    SignatureError,
    generate_keypair,
    load_private_key,
    load_trusted_keys,
)
from hades_perception.models.blobs import LocalBlobs, StoreError
from hades_perception.models.cache import Fetched, ModelCache
from hades_perception.models.store import ModelStore, Pointer
from tests.bundles import SHIPPED, new_version
from tests.unit.test_model_store import MODEL, V1, V2, V3

TOTAL = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file() and p.name != MANIFEST)
ONNX = (SHIPPED / "model.onnx").stat().st_size


class CutOffNetwork(LocalBlobs):
    """A fake (a dropped connection cannot be produced with a local folder): the first
    `cuts` transfers of <version>/model.onnx stop half-way through what was asked
    for and raise StoreError, as a connection reset mid-transfer would."""

    def __init__(self, root: Path, cuts: int) -> None:
        super().__init__(root)
        self.cuts = cuts
        self.offsets: list[int] = []  # where each model.onnx transfer started

    def download(self, key: str, out: IO[bytes], offset: int = 0) -> None:
        if not key.endswith("/model.onnx"):
            return super().download(key, out, offset)
        self.offsets.append(offset)
        if self.cuts <= 0:
            return super().download(key, out, offset)
        self.cuts -= 1
        buf = io.BytesIO()
        super().download(key, buf, offset)
        out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise StoreError(f"{key}: connection reset by peer (fake)")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    generate_keypair(d / "trusted" / "ci")
    generate_keypair(d / "other" / "other")
    return {"ci": d / "trusted" / "ci.key", "other": d / "other" / "other.key", "trusted": d / "trusted"}


@pytest.fixture(scope="module")
def store(keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """V1 unsigned, V2 signed by the trusted key, V3 signed by another key. Never changed by tests."""
    d = tmp_path_factory.mktemp("cache-store")
    s = ModelStore.open(d / "store")
    s.publish(SHIPPED)
    s.publish(new_version(d / V2, V2), load_private_key(keys["ci"]))
    s.publish(new_version(d / V3, V3), load_private_key(keys["other"]))
    return s


@pytest.fixture
def trusted(keys: dict[str, Path]) -> dict[str, Ed25519PublicKey]:
    return load_trusted_keys(keys["trusted"])


def _own_store(tmp_path: Path, blobs: type[LocalBlobs] = LocalBlobs, **kwargs: int) -> ModelStore:
    """A store of this test's own (for tests that break or wrap it), with V1 published."""
    store = ModelStore(blobs(tmp_path / "store", **kwargs))
    store.publish(SHIPPED)
    return store


# --- fetching -----------------------------------------------------------------------------
def test_fetch_puts_a_verified_bundle_in_versions(store: ModelStore, tmp_path: Path) -> None:
    """A fetched version is a complete, verified bundle under versions/, with nothing left in partial/."""
    cache = ModelCache(tmp_path / "cache")
    got = cache.fetch(store, MODEL, V1)
    assert got.path == tmp_path / "cache" / MODEL / "versions" / V1 and cache.has(MODEL, V1)
    assert open_bundle(got.path).version == V1
    assert (got.path / MANIFEST).read_bytes() == (SHIPPED / MANIFEST).read_bytes()
    assert (got.downloaded_bytes, got.resumed_at_bytes, got.attempts, got.from_cache) == (TOTAL, 0, 1, False)
    assert got.download_ms > 0 and got.verify_ms > 0
    assert not (tmp_path / "cache" / MODEL / "partial" / V1).exists()


def test_a_second_fetch_uses_the_verified_cached_copy(store: ModelStore, tmp_path: Path) -> None:
    """A version already cached is re-verified and used without downloading anything."""
    cache = ModelCache(tmp_path / "cache")
    cache.fetch(store, MODEL, V1)
    again = cache.fetch(store, MODEL, V1)
    assert (again.from_cache, again.downloaded_bytes, again.attempts) == (True, 0, 0) and again.verify_ms > 0


def test_a_partial_file_left_by_a_cut_off_transfer_is_resumed(store: ModelStore, tmp_path: Path) -> None:
    """model.onnx half on disk from an earlier run: the fetch downloads only the rest."""
    cache = ModelCache(tmp_path / "cache")
    partial = tmp_path / "cache" / MODEL / "partial" / V1
    partial.mkdir(parents=True)
    (partial / "model.onnx").write_bytes((SHIPPED / "model.onnx").read_bytes()[: ONNX // 2])
    got = cache.fetch(store, MODEL, V1)
    assert got.resumed_at_bytes == ONNX // 2
    assert got.downloaded_bytes == TOTAL - ONNX // 2
    assert open_bundle(got.path).version == V1


def test_a_transfer_cut_off_by_the_network_resumes_at_the_next_try(tmp_path: Path) -> None:
    """Two dropped connections: each retry starts where the last stopped; no byte is downloaded twice."""
    store = _own_store(tmp_path, CutOffNetwork, cuts=2)
    waits: list[float] = []
    got = ModelCache(tmp_path / "cache").fetch(store, MODEL, V1, backoff_s=0.25, sleep=waits.append)
    assert isinstance(store.blobs, CutOffNetwork)
    assert store.blobs.offsets == [0, ONNX // 2, ONNX // 2 + (ONNX - ONNX // 2) // 2]
    assert (got.attempts, waits) == (3, [0.25, 0.5])
    assert got.resumed_at_bytes == ONNX // 2 and got.downloaded_bytes == TOTAL
    assert open_bundle(got.path).version == V1


def test_an_unreachable_store_is_retried_with_growing_waits(tmp_path: Path) -> None:
    """The store's folder unusable (a file where the folder was) until the second wait: three attempts."""
    store = _own_store(tmp_path)
    root, away = tmp_path / "store", tmp_path / "store.away"
    root.rename(away)
    root.write_text("not a folder")
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 2:  # the store comes back
            root.unlink()
            away.rename(root)

    got = ModelCache(tmp_path / "cache").fetch(store, MODEL, V1, backoff_s=0.5, sleep=sleep)
    assert (got.attempts, waits) == (3, [0.5, 1.0])
    assert open_bundle(got.path).version == V1


def test_a_store_that_stays_unreachable_is_given_up_after_the_retries(tmp_path: Path) -> None:
    """retries=3: four attempts, waits doubling up to the 30 s cap, then the StoreError; the partial file stays."""
    store = _own_store(tmp_path, CutOffNetwork, cuts=100)
    waits: list[float] = []
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(StoreError, match="connection reset"):
        cache.fetch(store, MODEL, V1, retries=3, backoff_s=10.0, sleep=waits.append)
    assert waits == [10.0, 20.0, 30.0]
    assert not cache.has(MODEL, V1)
    kept = (tmp_path / "cache" / MODEL / "partial" / V1 / "model.onnx").stat().st_size
    assert 0 < kept < ONNX  # kept for the next fetch to resume


def test_a_store_folder_that_disappears_is_retried_not_refused(tmp_path: Path) -> None:
    """A store folder gone (an unmounted share) is an unreachable store, retried, not a missing version."""
    store = _own_store(tmp_path)
    (tmp_path / "store").rename(tmp_path / "store.away")
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        (tmp_path / "store.away").rename(tmp_path / "store")

    got = ModelCache(tmp_path / "cache").fetch(store, MODEL, V1, sleep=sleep)
    assert waits == [1.0] and got.attempts == 2


def test_a_version_not_in_the_store_is_refused_without_retrying(store: ModelStore, tmp_path: Path) -> None:
    """Asking for an unpublished version is a BundleError at once: there is nothing to wait for."""
    waits: list[float] = []
    with pytest.raises(BundleError, match=r"2099\.01\.01-1"):
        ModelCache(tmp_path / "cache").fetch(store, MODEL, "2099.01.01-1", sleep=waits.append)
    assert waits == []


def test_two_fetches_of_one_version_at_once_download_it_once(store: ModelStore, tmp_path: Path) -> None:
    """Two threads (the serving and the shadow follower) fetching one version: one downloads, one reuses."""
    cache = ModelCache(tmp_path / "cache")
    results: list[Fetched] = []
    threads = [threading.Thread(target=lambda: results.append(cache.fetch(store, MODEL, V1))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.from_cache for r in results) == [False, True]
    assert sum(r.downloaded_bytes for r in results) == TOTAL


# --- corruption ----------------------------------------------------------------------------
def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_file_corrupted_in_the_store_is_refused_and_not_kept(tmp_path: Path) -> None:
    """One flipped byte in the store's model.onnx: BundleError naming the file, no version folder, no partial copy."""
    store = _own_store(tmp_path)
    _flip_byte(tmp_path / "store" / MODEL / "versions" / V1 / "model.onnx", ONNX // 3)
    cache = ModelCache(tmp_path / "cache")
    for _ in range(2):  # and the next fetch does not resume the corrupt copy
        with pytest.raises(BundleError, match=r"model\.onnx: sha256"):
            cache.fetch(store, MODEL, V1)
        assert not (tmp_path / "cache" / MODEL / "versions" / V1).exists()
        assert not (tmp_path / "cache" / MODEL / "partial" / V1).exists()


def test_a_cached_copy_corrupted_on_disk_is_downloaded_again(store: ModelStore, tmp_path: Path) -> None:
    """A flipped byte in the cached model.onnx fails re-verification; the version is downloaded again."""
    cache = ModelCache(tmp_path / "cache")
    first = cache.fetch(store, MODEL, V1)
    _flip_byte(first.path / "model.onnx", 1000)
    again = cache.fetch(store, MODEL, V1)
    assert (again.from_cache, again.downloaded_bytes) == (False, TOTAL)
    assert open_bundle(again.path).version == V1


def test_a_cached_copy_that_lost_its_manifest_is_downloaded_again(store: ModelStore, tmp_path: Path) -> None:
    """A version folder without manifest.json (a removal cut short) is replaced by a fresh download."""
    cache = ModelCache(tmp_path / "cache")
    first = cache.fetch(store, MODEL, V1)
    (first.path / MANIFEST).unlink()
    assert not cache.has(MODEL, V1)
    again = cache.fetch(store, MODEL, V1)
    assert (again.from_cache, again.downloaded_bytes) == (False, TOTAL)
    assert open_bundle(again.path).version == V1


def test_a_partial_file_with_wrong_bytes_is_downloaded_again_from_scratch(store: ModelStore, tmp_path: Path) -> None:
    """Zeros in a partial file (a power cut) fail the resumed copy, so it is downloaded again from nothing."""
    partial = tmp_path / "cache" / MODEL / "partial" / V1
    partial.mkdir(parents=True)
    (partial / "model.onnx").write_bytes(bytes(ONNX // 2))
    got = ModelCache(tmp_path / "cache").fetch(store, MODEL, V1)
    assert open_bundle(got.path).version == V1
    assert got.downloaded_bytes == TOTAL - ONNX // 2 + TOTAL


def test_a_manifest_stored_under_another_versions_name_is_refused(
    keys: dict[str, Path], trusted: dict[str, Ed25519PublicKey], tmp_path: Path
) -> None:
    """V2's signed files copied under a new version's key verify, but are not that version: BundleError."""
    store = _own_store(tmp_path)
    store.publish(new_version(tmp_path / V2, V2), load_private_key(keys["ci"]))
    versions = tmp_path / "store" / MODEL / "versions"
    shutil.copytree(versions / V2, versions / "2026.12.01-1")
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(BundleError, match=re.escape(f"its manifest is that of {MODEL} {V2}")):
        cache.fetch(store, MODEL, "2026.12.01-1", trusted)
    assert not (tmp_path / "cache" / MODEL / "partial" / "2026.12.01-1" / "model.onnx").exists()
    shutil.copytree(versions / V2, tmp_path / "cache" / MODEL / "versions" / "2026.12.01-1")
    with pytest.raises(BundleError, match="its manifest is that of"):  # nor served from the cache
        cache.fetch(store, MODEL, "2026.12.01-1", trusted)


# --- signatures --------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "message"), [(V1, "not signed"), (V3, "not among the trusted keys")])
def test_a_signature_is_refused_before_any_model_file_is_downloaded(
    store: ModelStore, trusted: dict[str, Ed25519PublicKey], tmp_path: Path, version: str, message: str
) -> None:
    """Unsigned, or signed by an untrusted key: SignatureError before a single model byte is fetched."""
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(SignatureError, match=message):
        cache.fetch(store, MODEL, version, trusted)
    partial = tmp_path / "cache" / MODEL / "partial" / version
    assert not (partial / "model.onnx").exists() and not (partial / "golden").exists()
    assert not cache.has(MODEL, version)


def test_a_signed_version_is_fetched_with_its_signature(
    store: ModelStore, trusted: dict[str, Ed25519PublicKey], tmp_path: Path
) -> None:
    """A version signed by a trusted key is cached with manifest.json.sig, and re-verified from the cache."""
    cache = ModelCache(tmp_path / "cache")
    got = cache.fetch(store, MODEL, V2, trusted)
    assert (got.path / SIGNATURE_FILE).is_file()
    assert cache.fetch(store, MODEL, V2, trusted).from_cache


def test_an_unsigned_cached_copy_is_not_used_once_signatures_are_required(
    store: ModelStore, trusted: dict[str, Ed25519PublicKey], tmp_path: Path
) -> None:
    """A copy cached before keys were configured is checked again, and refused when unsigned."""
    cache = ModelCache(tmp_path / "cache")
    cache.fetch(store, MODEL, V1)
    with pytest.raises(SignatureError, match="not signed"):
        cache.fetch(store, MODEL, V1, trusted)
    assert not cache.has(MODEL, V1)


# --- pointers and pruning -------------------------------------------------------------------
def test_the_last_pointer_is_remembered_for_an_offline_start(tmp_path: Path) -> None:
    """remember_pointer writes what last_pointer reads back, per channel; nothing or garbage reads as None."""
    cache = ModelCache(tmp_path / "cache")
    assert cache.last_pointer(MODEL, "production") is None
    p = Pointer(MODEL, "production", V2, V1, "ana", "2026-11-23T10:00:00+00:00", "better shoots")
    cache.remember_pointer(p)
    assert cache.last_pointer(MODEL, "production") == p
    assert cache.last_pointer(MODEL, "canary") is None
    (tmp_path / "cache" / MODEL / "channels" / "production.json").write_text("{not json")
    assert cache.last_pointer(MODEL, "production") is None


def _cached_versions(cache: ModelCache, n: int) -> None:
    """Versions v1..vn in the cache, v1 the oldest."""
    for i in range(1, n + 1):
        v = cache.bundle_path(MODEL, f"v{i}")
        v.mkdir(parents=True)
        (v / MANIFEST).write_text("{}")
        os.utime(v, (1_000_000 + i, 1_000_000 + i))


def test_prune_keeps_the_newest_versions_and_the_protected_ones(tmp_path: Path) -> None:
    """keep_versions=2: the two newest stay, a protected older one stays, the rest go."""
    cache = ModelCache(tmp_path / "cache", keep_versions=2)
    _cached_versions(cache, 5)
    assert sorted(cache.prune(MODEL, keep={"v1"})) == ["v2", "v3"]
    assert sorted(p.name for p in (tmp_path / "cache" / MODEL / "versions").iterdir()) == ["v1", "v4", "v5"]
    assert cache.prune("other-model", keep=set()) == []


def test_prune_keeps_what_a_remembered_channel_pointer_names(tmp_path: Path) -> None:
    """The version an offline start would serve (the last pointer seen) is never pruned."""
    cache = ModelCache(tmp_path / "cache", keep_versions=1)
    _cached_versions(cache, 3)
    cache.remember_pointer(Pointer(MODEL, "production", "v1", None, "ana", "2026-11-22T00:00:00+00:00", "release"))
    assert cache.prune(MODEL, keep=set()) == ["v2"]


def test_a_cached_version_is_used_while_the_store_is_unreachable(tmp_path: Path) -> None:
    """A verified cached copy needs no store at all: a robot starts offline."""
    store = _own_store(tmp_path)
    ModelCache(tmp_path / "cache").fetch(store, MODEL, V1)
    (tmp_path / "store").rename(tmp_path / "store.away")
    (tmp_path / "store").write_text("not a folder")
    got = ModelCache(tmp_path / "cache").fetch(store, MODEL, V1, retries=0)
    assert got.from_cache and got.downloaded_bytes == 0
