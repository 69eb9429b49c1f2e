"""ed25519 signatures over a bundle's manifest: key files, signing, and every way a
signature is refused (real keys, real bundle copies)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
from pathlib import Path

import pytest

from hades_perception.contract.bundle import MANIFEST, BundleError
from hades_perception.contract.signing import (
    SIGNATURE_FILE,
    SignatureError,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    sign_manifest,
    verify_bundle,
    verify_manifest,
)
from hades_perception.models.store import ModelStore
from tests.unit.test_model_store import MODEL, SHIPPED, V1


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two key pairs: 'ci' signs, 'other' is somebody else's. Each .pub in its own folder."""
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("ci", "other"):
        private, public = generate_keypair(d / name / name)
        out[name], out[f"{name}.pub"] = private, public
    return out


def signed_copy(dst: Path, key: Path) -> Path:
    """A copy of the shipped bundle with manifest.json.sig written by `key`."""
    shutil.copytree(SHIPPED, dst)
    (dst / SIGNATURE_FILE).write_bytes(sign_manifest((dst / MANIFEST).read_bytes(), load_private_key(key)))
    return dst


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    """PREFIX.key is mode 0600 and PREFIX.pub a PEM public key; both load back as one key pair."""
    private, public = generate_keypair(tmp_path / "keys" / "ci")
    assert (private.name, public.name) == ("ci.key", "ci.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(load_private_key(private).public_key()) == key_id(load_public_key(public))


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    """A second keygen with the same prefix is refused and leaves both files as they were."""
    private, public = generate_keypair(tmp_path / "ci")
    before = private.read_bytes(), public.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        generate_keypair(tmp_path / "ci")
    public.unlink()  # a lone private key is still never replaced
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path / "ci")
    assert private.read_bytes() == before[0]


def test_keygen_keeps_a_dotted_prefix_whole(tmp_path: Path) -> None:
    """PREFIX.key means the whole prefix: ci.2026 gives ci.2026.key, not ci.key; nodes.key names nodes."""
    private, public = generate_keypair(tmp_path / "ci.2026")
    assert (private.name, public.name) == ("ci.2026.key", "ci.2026.pub")
    other, _ = generate_keypair(tmp_path / "ci.2027")
    assert other.name == "ci.2027.key" and other.read_bytes() != private.read_bytes()
    assert [p.name for p in generate_keypair(tmp_path / "nodes.key")] == ["nodes.key", "nodes.pub"]


def test_a_signed_bundle_verifies_with_its_key(keys: dict[str, Path], tmp_path: Path) -> None:
    """verify_bundle names the trusted key that signed it."""
    bundle = signed_copy(tmp_path / "b", keys["ci"])
    trusted = load_trusted_keys(keys["ci.pub"].parent)
    assert verify_bundle(bundle, trusted) == key_id(load_public_key(keys["ci.pub"]))


def test_any_key_in_the_trusted_folder_is_accepted(keys: dict[str, Path], tmp_path: Path) -> None:
    """Every *.pub in the folder is trusted, so keys can be rotated without a gap."""
    folder = tmp_path / "trusted"
    folder.mkdir()
    for name in ("ci.pub", "other.pub"):
        shutil.copy(keys[name], folder)
    trusted = load_trusted_keys(folder)
    assert len(trusted) == 2
    assert verify_bundle(signed_copy(tmp_path / "b", keys["other"]), trusted) in trusted


def test_a_bundle_signed_by_an_untrusted_key_is_refused(keys: dict[str, Path], tmp_path: Path) -> None:
    """A valid signature by a key not in the folder is a SignatureError naming the key."""
    bundle = signed_copy(tmp_path / "b", keys["other"])
    kid = key_id(load_public_key(keys["other.pub"]))
    with pytest.raises(SignatureError, match=f"signed by key {kid}, which is not among the trusted"):
        verify_bundle(bundle, load_trusted_keys(keys["ci.pub"].parent))


def test_a_tampered_manifest_is_refused(keys: dict[str, Path], tmp_path: Path) -> None:
    """Changing the manifest after signing (say, to point at other files) breaks the signature."""
    bundle = signed_copy(tmp_path / "b", keys["ci"])
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["calibration"]["mask_threshold"] = 0.1
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=1))
    with pytest.raises(SignatureError, match=r"does not match manifest\.json"):
        verify_bundle(bundle, load_trusted_keys(keys["ci.pub"].parent))


def test_a_signature_key_id_swapped_for_a_trusted_one_is_refused(keys: dict[str, Path], tmp_path: Path) -> None:
    """Claiming a trusted key's id does not help a signature made with another key."""
    bundle = signed_copy(tmp_path / "b", keys["other"])
    sig = json.loads((bundle / SIGNATURE_FILE).read_text())
    sig["key_id"] = key_id(load_public_key(keys["ci.pub"]))
    (bundle / SIGNATURE_FILE).write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not match"):
        verify_bundle(bundle, load_trusted_keys(keys["ci.pub"].parent))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "malformed signature file"),
        (b"\xff\xfe not json", "malformed signature file"),
        (b"[1, 2]", "malformed signature file"),
        (b'{"algorithm": "ed25519", "key_id": "x"}', "malformed signature file"),
        (b'{"algorithm": "ed25519", "key_id": "x", "signature": "not base64!"}', "malformed signature file"),
        (b'{"algorithm": "rsa", "key_id": "x", "signature": "AAAA"}', "^signature algorithm 'rsa', expected ed25519$"),
    ],
)
def test_a_malformed_signature_file_is_refused(content: bytes, message: str, keys: dict[str, Path]) -> None:
    """Unreadable JSON, missing fields, bad base64 or another algorithm: SignatureError, never a crash."""
    manifest = (SHIPPED / MANIFEST).read_bytes()
    with pytest.raises(SignatureError, match=message):
        verify_manifest(manifest, content, load_trusted_keys(keys["ci.pub"].parent))


def test_a_truncated_signature_is_refused(keys: dict[str, Path]) -> None:
    """A signature cut short (a half-written file) does not verify."""
    manifest = (SHIPPED / MANIFEST).read_bytes()
    sig = json.loads(sign_manifest(manifest, load_private_key(keys["ci"])))
    sig["signature"] = base64.b64encode(base64.b64decode(sig["signature"])[:40]).decode()
    with pytest.raises(SignatureError):
        verify_manifest(manifest, json.dumps(sig).encode(), load_trusted_keys(keys["ci.pub"].parent))


def test_an_unsigned_bundle_is_refused(keys: dict[str, Path]) -> None:
    """A node that trusts keys serves only signed bundles; a SignatureError is a BundleError."""
    with pytest.raises(SignatureError, match="not signed") as caught:
        verify_bundle(SHIPPED, load_trusted_keys(keys["ci.pub"].parent))
    assert isinstance(caught.value, BundleError)


def test_an_empty_or_missing_trusted_keys_folder_is_an_error(tmp_path: Path) -> None:
    """Told to check signatures with no keys, a node must refuse rather than accept everything."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("public keys go here")
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(SignatureError, match=r"no trusted public keys \(\*\.pub\)"):
            load_trusted_keys(folder)


def test_a_trusted_key_file_that_is_not_an_ed25519_public_key_is_an_error(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    """A .pub that is garbage, a private key copied by mistake, or another kind of key is refused by name."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    cases = {
        "garbage.pub": (b"not a key", "not a PEM public key"),
        "private.pub": (keys["ci"].read_bytes(), "not a PEM public key"),
        "ec.pub": (
            ec_pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "not an ed25519 public key",
        ),
    }
    for name, (content, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(keys["ci.pub"], folder)  # a good key beside it does not excuse the bad one
        (folder / name).write_bytes(content)
        with pytest.raises(SignatureError, match=re.escape(f"{name}: {message}")):
            load_trusted_keys(folder)


def test_publishing_with_a_key_signs_the_version_in_the_store(keys: dict[str, Path], tmp_path: Path) -> None:
    """store.publish(bundle, key) stores a signature that verifies over the stored manifest."""
    store = ModelStore.open(tmp_path / "store")
    store.publish(SHIPPED, load_private_key(keys["ci"]))
    assert store.is_signed(MODEL, V1)
    manifest, _ = store.blobs.read(store.version_key(MODEL, V1, MANIFEST))
    signature, _ = store.blobs.read(store.version_key(MODEL, V1, SIGNATURE_FILE))
    assert verify_manifest(manifest, signature, load_trusted_keys(keys["ci.pub"].parent)) == key_id(
        load_public_key(keys["ci.pub"])
    )
