"""The node's local copy of store versions: download, verify, then (and only then) use.

  <cache>/<model>/versions/<version>/   complete, verified bundles (renamed into place)
  <cache>/<model>/partial/<version>/    downloads in progress; a cut-off file resumes here
  <cache>/<model>/channels/<ch>.json    the last pointer seen, so a node starts offline

A download that fails on the network is retried with backoff and resumes at the
byte where it stopped (engines can be hundreds of MB). A file whose sha256 does
not match the manifest, or a signature that does not verify, is a permanent
failure for that version (BundleError), not something to retry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hades_perception.contract.bundle import MANIFEST, BundleError, Manifest, open_bundle
from hades_perception.contract.signing import SIGNATURE_FILE, Ed25519PublicKey, verify_bundle, verify_manifest
from hades_perception.models.blobs import AccessDeniedError, NotFoundError, StoreError, flocked
from hades_perception.models.store import ModelStore, Pointer

log = logging.getLogger(__name__)


@dataclass
class Fetched:
    path: Path
    download_ms: float = 0.0
    verify_ms: float = 0.0
    downloaded_bytes: int = 0
    resumed_at_bytes: int = 0  # bytes already on disk from an earlier, cut-off attempt
    attempts: int = 0
    from_cache: bool = False


class ModelCache:
    def __init__(self, root: Path, keep_versions: int = 3) -> None:
        self.root = Path(root).expanduser()
        self.keep_versions = keep_versions

    def bundle_path(self, model: str, version: str) -> Path:
        return self.root / model / "versions" / version

    def has(self, model: str, version: str) -> bool:
        return (self.bundle_path(model, version) / MANIFEST).is_file()

    # --- pointers, for starting without a network ---------------------------------
    def remember_pointer(self, pointer: Pointer) -> None:
        path = self.root / pointer.model / "channels" / f"{pointer.channel}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pointer.to_json())
        os.replace(tmp, path)

    def last_pointer(self, model: str, channel: str) -> Pointer | None:
        path = self.root / model / "channels" / f"{channel}.json"
        try:
            return Pointer.from_json(path.read_bytes())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    # --- fetching -----------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, model: str, version: str) -> Iterator[None]:
        lock = self.root / model / "partial" / f"{version}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with flocked(lock):
            yield

    def verify(self, path: Path, trusted: dict[str, Ed25519PublicKey] | None) -> Manifest:
        """Every file against the manifest, and the signature when keys are trusted."""
        manifest = open_bundle(path)
        if trusted:
            verify_bundle(path, trusted)
        return manifest

    def fetch(
        self,
        store: ModelStore,
        model: str,
        version: str,
        trusted: dict[str, Ed25519PublicKey] | None = None,
        *,
        retries: int = 4,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Fetched:
        """A verified local bundle of `model` `version`, downloading what is missing."""
        with self._lock(model, version):
            final = self.bundle_path(model, version)
            if self.has(model, version):
                t0 = time.perf_counter()
                try:
                    _same_version(self.verify(final, trusted), model, version)
                    return Fetched(final, verify_ms=(time.perf_counter() - t0) * 1e3, from_cache=True)
                except BundleError as exc:
                    log.warning("cached %s %s fails verification (%s); downloading it again", model, version, exc)
                    shutil.rmtree(final)
            staging = self.root / model / "partial" / version
            reused = staging.is_dir() and any(p.is_file() for p in staging.rglob("*"))
            result = Fetched(final)
            for fresh in (False, True):
                t0 = time.perf_counter()
                self._download_retrying(store, model, version, staging, trusted, result, retries, backoff_s, sleep)
                result.download_ms += (time.perf_counter() - t0) * 1e3
                t0 = time.perf_counter()
                try:
                    self.verify(staging, trusted)
                    break
                except BundleError as exc:
                    shutil.rmtree(staging, ignore_errors=True)  # never keep, never resume, a corrupt copy
                    if fresh or not (reused or result.resumed_at_bytes):
                        raise
                    # Bytes kept from an earlier transfer may not be the store's (a power cut can
                    # leave zeros at the end of a file): one more try, from nothing, decides.
                    log.warning(
                        "resumed copy of %s %s fails verification (%s); downloading it again", model, version, exc
                    )
            result.verify_ms = (time.perf_counter() - t0) * 1e3
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a folder without its manifest: an incomplete copy or removal
                shutil.rmtree(final)
            os.rename(staging, final)
            log.info(
                "fetched %s %s: %d bytes in %.0f ms (%d attempts)",
                model,
                version,
                result.downloaded_bytes,
                result.download_ms,
                result.attempts,
            )
            return result

    def _download_retrying(
        self,
        store: ModelStore,
        model: str,
        version: str,
        staging: Path,
        trusted: dict[str, Ed25519PublicKey] | None,
        result: Fetched,
        retries: int,
        backoff_s: float,
        sleep: Callable[[float], None],
    ) -> None:
        """_download, retried with exponential backoff while the store fails; each try
        resumes where the last one stopped. Refused credentials are not retried here:
        they will not be accepted seconds later, and the follower tries again at its
        next poll (after someone fixes the SAS or role)."""
        tries = 0
        while True:
            tries += 1
            result.attempts += 1
            try:
                self._download(store, model, version, staging, trusted, result)
                return
            except NotFoundError as exc:
                raise BundleError(f"{model} {version}: {exc}") from exc
            except AccessDeniedError:
                raise
            except StoreError as exc:
                if tries > retries:
                    raise
                wait = min(backoff_s * 2 ** (tries - 1), 30.0)
                log.warning("download of %s %s failed (%s); retry in %.1f s", model, version, exc, wait)
                sleep(wait)

    def _download(
        self,
        store: ModelStore,
        model: str,
        version: str,
        staging: Path,
        trusted: dict[str, Ed25519PublicKey] | None,
        result: Fetched,
    ) -> None:
        blobs = store.blobs
        manifest_bytes, _ = blobs.read(store.version_key(model, version, MANIFEST))
        try:
            manifest = Manifest.from_dict(json.loads(manifest_bytes))
        except ValueError as exc:
            raise BundleError(f"{model} {version}: unreadable manifest in the store ({exc})") from exc
        _same_version(manifest, model, version)
        signature = None
        with contextlib.suppress(NotFoundError):
            signature, _ = blobs.read(store.version_key(model, version, SIGNATURE_FILE))
        if trusted:  # refuse before downloading hundreds of MB
            verify_manifest(manifest_bytes, signature, trusted)
        staging.mkdir(parents=True, exist_ok=True)
        for rel, meta in manifest.raw["files"].items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            want = int(meta["size"])
            have = dest.stat().st_size if dest.exists() else 0
            if have > want:
                dest.unlink()
                have = 0
            if have == want:
                continue
            if have and not result.resumed_at_bytes:
                result.resumed_at_bytes = have
            with dest.open("ab") as f:
                try:
                    blobs.download(store.version_key(model, version, rel), f, offset=have)
                finally:
                    f.flush()
                    result.downloaded_bytes += f.tell() - have
        if signature is not None:
            (staging / SIGNATURE_FILE).write_bytes(signature)
        (staging / MANIFEST).write_bytes(manifest_bytes)  # last: the copy is complete

    def prune(self, model: str, keep: set[str]) -> list[str]:
        """Delete cached versions beyond the newest `keep_versions`, never those in `keep`
        nor those a remembered channel pointer names (what an offline start would serve)."""
        base = self.root / model / "versions"
        if not base.is_dir():
            return []
        for path in (self.root / model / "channels").glob("*.json"):
            pointer = self.last_pointer(model, path.stem)
            if pointer is not None:
                keep = keep | {pointer.version}
        cached = sorted(base.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        removed = []
        for p in cached[self.keep_versions :]:
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed


def _same_version(manifest: Manifest, model: str, version: str) -> None:
    """A manifest stored under one version's key that names another (a copied folder, or an
    old signed manifest replayed under a new version) is not that version."""
    if (manifest.name, manifest.version) != (model, version):
        raise BundleError(f"{model} {version}: its manifest is that of {manifest.name} {manifest.version}")
