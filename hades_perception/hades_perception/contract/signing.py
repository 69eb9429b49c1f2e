"""ed25519 signatures over a bundle's manifest.json.

The manifest lists the sha256 of every file, so signing the manifest signs the
whole bundle. A node given trusted public keys serves only bundles whose
manifest.json.sig verifies against one of them. The private key stays with the
training pipeline (or a person); nodes only ever hold public keys.

Key files are PEM: `<name>.key` (PKCS#8, mode 0600) and `<name>.pub`
(SubjectPublicKeyInfo). The signature file is JSON: algorithm, key id, signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hades_perception.contract.bundle import BundleError

SIGNATURE_FILE = "manifest.json.sig"
ALGORITHM = "ed25519"


class SignatureError(BundleError):
    """A bundle whose signature is missing, malformed or not from a trusted key."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint that names a key in signatures, logs and diagnostics."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(prefix: Path) -> tuple[Path, Path]:
    """Write <prefix>.key (private, 0600) and <prefix>.pub; refuse to overwrite a key.
    The whole prefix is kept (ci.2026 gives ci.2026.key); a prefix given as the
    key file itself (ci.key or ci.pub) names the same pair as ci."""
    prefix = Path(prefix)
    if prefix.suffix in (".key", ".pub"):
        prefix = prefix.with_suffix("")
    private_path, public_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise FileExistsError(f"{p} exists; keys are never overwritten")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key (no password is asked)
        raise SignatureError(f"{path}: not a PEM private key without a password ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except ValueError as exc:
        raise SignatureError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: not an ed25519 public key")
    return key


def load_trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """Every *.pub in a folder, by key id. An empty or missing folder is an error:
    a node told to check signatures must not silently accept everything."""
    folder = Path(folder).expanduser()
    keys = {key_id(k): k for k in (load_public_key(p) for p in sorted(folder.glob("*.pub")))} if folder.is_dir() else {}
    if not keys:
        raise SignatureError(f"{folder}: no trusted public keys (*.pub) found")
    return keys


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The content of manifest.json.sig for these exact manifest bytes."""
    return json.dumps(
        {
            "algorithm": ALGORITHM,
            "key_id": key_id(private_key.public_key()),
            "signature": base64.b64encode(private_key.sign(manifest_bytes)).decode(),
        },
        indent=1,
    ).encode()


def verify_manifest(manifest_bytes: bytes, signature: bytes | None, trusted: dict[str, Ed25519PublicKey]) -> str:
    """The id of the trusted key that signed these manifest bytes; SignatureError otherwise."""
    if signature is None:
        raise SignatureError("bundle is not signed and this node only serves signed bundles")
    try:
        sig = json.loads(signature)
        raw = base64.b64decode(sig["signature"], validate=True)
        kid = str(sig["key_id"])
        algorithm = sig.get("algorithm")
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"malformed signature file ({exc!r})") from exc
    if algorithm != ALGORITHM:
        raise SignatureError(f"signature algorithm {algorithm!r}, expected {ALGORITHM}")
    key = trusted.get(kid)
    if key is None:
        raise SignatureError(f"signed by key {kid}, which is not among the trusted keys {sorted(trusted)}")
    try:
        key.verify(raw, manifest_bytes)
    except InvalidSignature as exc:
        raise SignatureError(f"signature by key {kid} does not match manifest.json") from exc
    return kid


def verify_bundle(bundle: Path, trusted: dict[str, Ed25519PublicKey]) -> str:
    """Check a bundle folder's manifest signature; returns the signing key's id."""
    sig_path = Path(bundle) / SIGNATURE_FILE
    signature = sig_path.read_bytes() if sig_path.is_file() else None
    return verify_manifest((Path(bundle) / "manifest.json").read_bytes(), signature, trusted)
