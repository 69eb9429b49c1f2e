"""API keys: who may call the HTTP API, and for what.

A key is a random 32-byte URL-safe token with the prefix `hpk_` (so a leaked one is
recognisable in a paste or a scanner's report). It is shown once, when it is created;
the keys file keeps only its sha256 with a name, scopes and the creation time:

  {"keys": [{"name": "lab-laptop", "sha256": "...", "scopes": ["read", "predict"],
             "created_at": "2026-12-01T10:00:00+00:00"}]}

Rules:
- The file is written whole (a temporary file renamed into place) with mode 0600, under
  an flock, so two `keys create` at once both land and a server never reads half a file.
- A running server re-reads the file when it changes: a revoked key stops working at
  its next request, without a restart.
- A presented key is hashed and compared with every stored hash by hmac.compare_digest,
  so neither the comparison nor the search ends early on a partial match.
- No FastAPI here: `hades-perception keys` works without the api extra.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hades_perception.models.blobs import flocked

log = logging.getLogger(__name__)
PREFIX = "hpk_"
# read: models, metadata, monitoring; predict: /v1/predict and batches (and their jobs);
# train: hades-train jobs and dataset uploads; promote: move a store channel (a person's decision).
SCOPES = ("read", "predict", "train", "promote")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def default_keys_file() -> Path:
    """$HADES_DATA_DIR/api-keys.json, else ./var/api-keys.json (as the model store)."""
    return Path(os.environ.get("HADES_DATA_DIR", "var")) / "api-keys.json"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """ "read,predict" -> ("read", "predict"); ValueError naming the known scopes."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes {', '.join(unknown) or '(none)'}: expected a comma-separated subset of {SCOPES}")
    return scopes


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without the key itself."""

    name: str
    scopes: tuple[str, ...]
    created_at: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "scopes": list(self.scopes), "created_at": self.created_at}


class KeyFile:
    """The keys file: create, list and revoke (the CLI), verify (the server)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) of what _keys holds
        self._keys: list[ApiKey] = []

    # --- reading -----------------------------------------------------------------------
    def stored(self) -> list[ApiKey]:
        """The keys in the file now; ValueError when it cannot be read."""
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.path}: unreadable keys file ({exc}); fix or remove it") from exc
        try:
            return [
                ApiKey(str(k["name"]), tuple(str(s) for s in k["scopes"]), str(k["created_at"]), str(k["sha256"]))
                for k in doc["keys"]
            ]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{self.path}: not a keys file (expected {{'keys': [...]}}: {exc!r})") from exc

    def keys(self) -> list[ApiKey]:
        """The stored keys, re-read when the file changed since the last call."""
        try:
            st = self.path.stat()
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        with self._lock:
            if seen != self._seen:
                try:
                    self._keys = self.stored() if seen else []
                except ValueError as exc:  # refuse every key rather than serve on a file nobody can read
                    log.error("%s", exc)
                    self._keys = []
                self._seen = seen
            return list(self._keys)

    def verify(self, key: str) -> ApiKey | None:
        """The stored key `key` is, or None. Every stored hash is compared."""
        wanted = digest(key)
        found = None
        for k in self.keys():
            if hmac.compare_digest(k.sha256, wanted):
                found = k
        return found

    # --- writing (the CLI) ----------------------------------------------------------------
    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".api-keys.", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"keys": [k.to_json() for k in keys]}, f, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create(self, name: str, scopes: tuple[str, ...]) -> str:
        """A new key for `name`: returned once, stored as its sha256."""
        if not NAME.match(name):
            raise ValueError(f"key name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting alphanumeric")
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"scopes {bad or '(none)'}: expected a subset of {SCOPES}")
        key = PREFIX + secrets.token_urlsafe(32)
        with flocked(self.path.with_name(self.path.name + ".lock")):
            keys = self.stored()
            if any(k.name == name for k in keys):
                raise FileExistsError(f"{self.path}: a key named {name!r} exists; revoke it first or pick another name")
            now = datetime.now(UTC).isoformat(timespec="seconds")
            self._write([*keys, ApiKey(name, tuple(scopes), now, digest(key))])
        return key

    def revoke(self, name: str) -> None:
        with flocked(self.path.with_name(self.path.name + ".lock")):
            keys = self.stored()
            if not any(k.name == name for k in keys):
                raise ValueError(f"{self.path}: no key named {name!r}")
            self._write([k for k in keys if k.name != name])
