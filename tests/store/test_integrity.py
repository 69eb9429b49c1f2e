"""What a node refuses to use: a blob changed in the store after publishing, and
versions whose signature is missing, from an untrusted key or over another manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hades_perception.contract.bundle import BundleError
from hades_perception.contract.signing import (
    SIGNATURE_FILE,
    Ed25519PublicKey,
    SignatureError,
    generate_keypair,
    load_private_key,
    load_trusted_keys,
)
from hades_perception.models.cache import ModelCache
from hades_perception.models.cli import main
from hades_perception.models.store import ModelStore
from tests.store.conftest import MODEL, SEEDLINGS, BundleFactory

V = "2026.11.24-1"


def keypair(folder: Path) -> tuple[Path, dict[str, Ed25519PublicKey]]:
    """A signing key's file, and the trusted-keys dict a node holding only its public half loads."""
    private, _ = generate_keypair(folder / "signer")
    return private, load_trusted_keys(folder)


def nothing_downloaded(cache: ModelCache, version: str) -> bool:
    versions = cache.root / MODEL / "versions"
    return (
        not cache.has(MODEL, version)
        and not (versions.exists() and any(versions.iterdir()))
        and not (cache.root / MODEL / "partial" / version).exists()
    )


def test_a_blob_corrupted_in_the_store_is_refused_by_its_checksum(
    store: ModelStore, make_bundle: BundleFactory, admin: Any, tmp_path: Path
):
    """model.onnx overwritten with same-size other bytes: BundleError names the sha256 mismatch; nothing cached."""
    store.publish(make_bundle(V))
    original = (SEEDLINGS / "model.onnx").read_bytes()
    corrupted = bytes(b ^ 0xFF for b in original[:4096]) + original[4096:]
    assert len(corrupted) == len(original)
    admin.get_blob_client(f"{MODEL}/versions/{V}/model.onnx").upload_blob(corrupted, overwrite=True)

    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 .* does not match the manifest"):
        cache.fetch(store, MODEL, V)
    assert nothing_downloaded(cache, V)  # the corrupt copy is neither kept nor resumed from


def test_a_version_signed_by_an_untrusted_key_is_refused_before_any_file_downloads(
    store: ModelStore, make_bundle: BundleFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Signed with key A (publish --sign): a node trusting only B refuses it unfetched; one trusting A gets it."""
    key_a, trust_a = keypair(tmp_path / "a")
    _, trust_b = keypair(tmp_path / "b")
    assert main(["--store", store.describe(), "publish", str(make_bundle(V)), "--sign", str(key_a)]) == 0
    assert f"signed by key {next(iter(trust_a))}" in capsys.readouterr().out
    assert store.is_signed(MODEL, V)

    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        cache.fetch(store, MODEL, V, trust_b)
    assert nothing_downloaded(cache, V)

    got = cache.fetch(store, MODEL, V, trust_a)
    assert got.path == cache.bundle_path(MODEL, V) and (got.path / SIGNATURE_FILE).is_file()
    assert cache.fetch(store, MODEL, V, trust_a).from_cache


def test_an_unsigned_version_is_refused_when_keys_are_trusted(
    store: ModelStore, make_bundle: BundleFactory, tmp_path: Path
):
    """A node given trusted keys serves only signed bundles; without keys the same version is fetched."""
    _, trusted = keypair(tmp_path / "a")
    store.publish(make_bundle(V))
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(SignatureError, match="not signed"):
        cache.fetch(store, MODEL, V, trusted)
    assert nothing_downloaded(cache, V)
    assert cache.fetch(store, MODEL, V).path.is_dir()


def test_a_manifest_changed_in_the_store_after_signing_is_refused(
    store: ModelStore, make_bundle: BundleFactory, admin: Any, tmp_path: Path
):
    """manifest.json overwritten after signing (a lower mask threshold): the signature no longer matches."""
    key, trusted = keypair(tmp_path / "a")
    store.publish(make_bundle(V), load_private_key(key))
    manifest = store.manifest(MODEL, V)
    manifest["calibration"]["mask_threshold"] = 0.01
    admin.get_blob_client(f"{MODEL}/versions/{V}/manifest.json").upload_blob(
        json.dumps(manifest, indent=1).encode(), overwrite=True
    )
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(SignatureError, match=r"does not match manifest\.json"):
        cache.fetch(store, MODEL, V, trusted)
    assert nothing_downloaded(cache, V)
