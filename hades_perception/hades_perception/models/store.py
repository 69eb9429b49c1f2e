"""The versioned model store: immutable versions and channel pointers moved by people.

Layout (the same in a folder and in a blob container):
  <model>/versions/<version>/manifest.json, model.onnx, golden/..., manifest.json.sig
  <model>/channels/<channel>.json    the version a channel points to, who moved it,
                                     when, why, the version before, and the history

Rules:
- A version is immutable: publishing one whose manifest exists is refused (an
  identical manifest is reported as already published, so a retried pipeline step
  is harmless).
- Writers upload every file, then the signature, then the manifest: a version
  with a manifest is complete, and readers ignore versions without one.
- Channel pointers move only by conditional (ETag) writes. Two people promoting
  at once both succeed, one after the other, and the later pointer names the
  earlier as its previous version: no update is lost.
- Nothing here promotes by itself; promote() and rollback() are called by a
  person through `hades-model`.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import socket
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import MANIFEST, open_bundle
from hades_perception.contract.signing import SIGNATURE_FILE, Ed25519PrivateKey, sign_manifest
from hades_perception.models.blobs import Blobs, ConflictError, NotFoundError, StoreError, open_blobs

log = logging.getLogger(__name__)
# The channel robots serve from (moved only by a person) and the one candidates go to.
PRODUCTION, CANARY = "production", "canary"
HISTORY_KEPT = 100


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def version_order(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for versions: digit runs as numbers, the rest as text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", version) if part)


def _is_version_manifest(key: str) -> bool:
    """<model>/versions/<version>/manifest.json: the mark of a complete version."""
    parts = key.split("/")
    return len(parts) == 4 and parts[1] == "versions" and parts[3] == MANIFEST


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class Move:
    """One move of a channel pointer."""

    version: str
    by: str
    at: str
    reason: str
    action: str = "promote"  # or "rollback"


@dataclass
class Pointer:
    model: str
    channel: str
    version: str
    previous: str | None
    by: str
    at: str
    reason: str
    action: str = "promote"
    history: list[Move] = field(default_factory=list)  # earlier moves, newest first

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Pointer:
        """Fields unknown here (written by a newer hades-model) are ignored. ValueError,
        TypeError or KeyError for what is not a pointer."""
        d = _known(cls, json.loads(data))
        d["history"] = [Move(**_known(Move, m)) for m in d.get("history", [])]
        return cls(**d)

    def moves(self) -> list[Move]:
        """Every move, newest first (this one included)."""
        return [Move(self.version, self.by, self.at, self.reason, self.action), *self.history]


def _known(cls: type, d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise TypeError(f"expected a JSON object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _parse_pointer(key: str, data: bytes) -> Pointer:
    try:
        return Pointer.from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        # A store error, not a crash: a node keeps serving and reports it until a person fixes it.
        raise StoreError(f"{key}: unreadable channel pointer ({exc})") from exc


class ModelStore:
    """Publishing, listing and channel moves over any Blobs backend."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    @classmethod
    def open(cls, url: str | Path) -> ModelStore:
        return cls(open_blobs(url))

    def describe(self) -> str:
        return self.blobs.describe()

    # --- keys ------------------------------------------------------------------
    @staticmethod
    def version_key(model: str, version: str, rel: str = "") -> str:
        return f"{model}/versions/{version}/{rel}".rstrip("/")

    @staticmethod
    def channel_key(model: str, channel: str) -> str:
        return f"{model}/channels/{channel}.json"

    # --- publishing --------------------------------------------------------------
    def publish(self, bundle: Path, signing_key: Ed25519PrivateKey | None = None) -> tuple[dict[str, Any], bool]:
        """Upload a bundle folder as an immutable version. Returns the manifest, and
        False when exactly this version was already published (nothing uploaded).

        The bundle is verified first (every file against the manifest), so what
        is published is exactly what was exported. Two publishers racing with different
        content under one new version can interleave files before one manifest wins;
        nodes then refuse that version on its checksums, and a new version is the fix."""
        bundle = Path(bundle)
        manifest = open_bundle(bundle)
        self.blobs.ensure_container()  # publishers may create the store; nodes never do
        manifest_bytes = (bundle / MANIFEST).read_bytes()
        key = self.version_key(manifest.name, manifest.version, MANIFEST)
        try:
            existing, _ = self.blobs.read(key)
        except NotFoundError:
            existing = None
        if existing is not None:
            if existing == manifest_bytes:
                log.info("%s %s is already published (identical manifest)", manifest.name, manifest.version)
                return manifest.raw, False
            raise ConflictError(
                f"{manifest.name} {manifest.version} is already published with a different manifest; "
                "versions are immutable, export a new version"
            )
        for rel in manifest.raw["files"]:
            self.blobs.upload(self.version_key(manifest.name, manifest.version, rel), bundle / rel)
        if signing_key is not None:
            sig = sign_manifest(manifest_bytes, signing_key)
            self.blobs.write(self.version_key(manifest.name, manifest.version, SIGNATURE_FILE), sig)
        try:
            self.blobs.write(key, manifest_bytes, if_absent=True)
        except ConflictError as exc:
            raise ConflictError(f"{manifest.name} {manifest.version} was published by someone else meanwhile") from exc
        log.info("published %s %s to %s", manifest.name, manifest.version, self.describe())
        return manifest.raw, True

    # --- reading -----------------------------------------------------------------
    def models(self) -> list[str]:
        """Models with at least one complete version."""
        return sorted({k.split("/", 1)[0] for k in self.blobs.list("") if _is_version_manifest(k)})

    def versions(self, model: str) -> list[str]:
        """Complete versions (those with a manifest), oldest first: numbers within a
        version compare as numbers, so build 2026.11.22-10 comes after 2026.11.22-9."""
        prefix = f"{model}/versions/"
        return sorted(
            (k[len(prefix) : -len("/" + MANIFEST)] for k in self.blobs.list(prefix) if _is_version_manifest(k)),
            key=version_order,
        )

    def manifest(self, model: str, version: str) -> dict[str, Any]:
        try:
            data, _ = self.blobs.read(self.version_key(model, version, MANIFEST))
        except NotFoundError as exc:
            raise NotFoundError(f"{model} {version} is not published in {self.describe()}") from exc
        return dict(json.loads(data))

    # --- records about a version (not part of it: a version's files never change) --------
    @staticmethod
    def record_key(model: str, version: str, name: str) -> str:
        return f"{model}/records/{version}/{name}.json"

    def write_record(self, model: str, version: str, name: str, doc: dict[str, Any]) -> None:
        """What was decided about a published version (e.g. the retraining pipeline's
        gate results), for the person who promotes it to read."""
        self.manifest(model, version)  # only about what is published
        self.blobs.write(self.record_key(model, version, name), json.dumps(doc, indent=1).encode())

    def records(self, model: str, version: str) -> dict[str, dict[str, Any]]:
        """Every record about a version, by name (gates, drift reports, shadow agreement)."""
        prefix = f"{model}/records/{version}/"
        out = {}
        for key in self.blobs.list(prefix):
            if key.endswith(".json"):
                out[key[len(prefix) : -5]] = dict(json.loads(self.blobs.read(key)[0]))
        return out

    def record(self, model: str, version: str, name: str) -> dict[str, Any] | None:
        try:
            data, _ = self.blobs.read(self.record_key(model, version, name))
        except NotFoundError:
            return None
        return dict(json.loads(data))

    def is_signed(self, model: str, version: str) -> bool:
        return self.blobs.exists(self.version_key(model, version, SIGNATURE_FILE))

    def channels(self, model: str) -> dict[str, Pointer]:
        prefix = f"{model}/channels/"
        out = {}
        for k in self.blobs.list(prefix):
            if k.endswith(".json"):
                out[k[len(prefix) : -5]] = _parse_pointer(k, self.blobs.read(k)[0])
        return out

    def pointer(self, model: str, channel: str) -> tuple[Pointer, str] | None:
        """The channel's pointer and its ETag; None when the channel was never set."""
        try:
            data, etag = self.blobs.read(self.channel_key(model, channel))
        except NotFoundError:
            return None
        return _parse_pointer(self.channel_key(model, channel), data), etag

    def pointer_if_changed(self, model: str, channel: str, etag: str | None) -> tuple[Pointer, str] | None:
        """The cheap poll a node makes: None when the pointer's ETag is still `etag`."""
        key = self.channel_key(model, channel)
        got = self.blobs.read_if_changed(key, etag)
        return None if got is None else (_parse_pointer(key, got[0]), got[1])

    # --- moving channels (people only) -------------------------------------------
    def promote(
        self, model: str, version: str, channel: str, reason: str, by: str | None = None, *, attempts: int = 20
    ) -> Pointer:
        """Point `channel` at `version`. Retries on a lost conditional write, each
        time on top of the pointer that won, so concurrent promotions all land."""
        self.manifest(model, version)  # refuse what is not (completely) published
        return self._move(model, channel, lambda _cur: version, reason, by, "promote", attempts)

    def rollback(self, model: str, channel: str, reason: str, by: str | None = None, *, attempts: int = 20) -> Pointer:
        """Point `channel` back at the version it served before the current one.
        Each rollback undoes one move, so rolling back twice goes two steps back; a version
        rolled back from and later promoted again is served-before like any other."""

        def target(cur: Pointer | None) -> str:
            if cur is None:
                raise NotFoundError(f"{model}: channel {channel!r} was never set; nothing to roll back")
            # Replay the history as a stack: a promotion pushes, a rollback pops. The
            # version under the top is the one served before the current one. (Skipping
            # every version ever rolled back from would also skip one that was fixed and
            # deliberately promoted again.)
            served: list[str] = []
            for m in reversed(cur.moves()):
                if m.action == "rollback":
                    while served and served[-1] != m.version:
                        served.pop()
                    if not served:  # history older than the kept moves: start again from here
                        served.append(m.version)
                else:
                    served.append(m.version)
            if len(served) < 2:
                raise NotFoundError(f"{model}: channel {channel!r} has no earlier version to roll back to")
            return served[-2]

        return self._move(model, channel, target, reason, by, "rollback", attempts)

    def _move(
        self, model: str, channel: str, choose: Any, reason: str, by: str | None, action: str, attempts: int
    ) -> Pointer:
        if not reason.strip():
            raise ValueError("a reason is required: say why the channel moves")
        key = self.channel_key(model, channel)
        for _ in range(attempts):
            current = self.pointer(model, channel)
            cur, etag = current if current else (None, None)
            version = choose(cur)
            if cur is not None and cur.version == version:
                raise ValueError(f"{model} channel {channel!r} already points at {version}")
            new = Pointer(
                model=model,
                channel=channel,
                version=version,
                previous=cur.version if cur else None,
                by=by or default_actor(),
                at=_now(),
                reason=reason.strip(),
                action=action,
                history=cur.moves()[:HISTORY_KEPT] if cur else [],
            )
            try:
                if etag is None:
                    self.blobs.write(key, new.to_json(), if_absent=True)
                else:
                    self.blobs.write(key, new.to_json(), if_match=etag)
            except ConflictError:
                log.info("%s moved meanwhile; retrying on top of the new pointer", key)
                continue
            log.info("%s %s: %s -> %s by %s (%s)", model, channel, new.previous, version, new.by, reason)
            return new
        raise ConflictError(f"{key}: gave up after {attempts} conflicting writes")


def version_summary(manifest: dict[str, Any], signed: bool) -> dict[str, Any]:
    """The manifest facts a person promoting a version reads (`hades-model show`, the API)."""
    return {
        "name": manifest["name"],
        "version": manifest["version"],
        "created_at": manifest.get("created_at", ""),
        "signed": signed,
        "classes": list(manifest["outputs"]["segmentation"]["classes"]),
        "landmark_kinds": list(manifest["outputs"]["landmarks"]["kinds"]),
        "plants": manifest.get("calibration", {}).get("plants"),
        "files": {k: int(v["size"]) for k, v in manifest.get("files", {}).items()},
        "metrics": manifest.get("metrics", {}),
        "lineage": manifest.get("lineage", {}),
    }
