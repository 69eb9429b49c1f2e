"""Blob backends for the model store: a flat key space with ETags.

The model store (store.py) needs only a few operations, and both backends give
them the same meaning:
  read / read_if_changed   whole small objects (manifests, channel pointers), with ETag
  write(if_match | if_absent)   conditional writes: a stale ETag or an existing key is a ConflictError
  upload / download(offset)     large files, streamed; download resumes at an offset
  list(prefix)

Backends, chosen by URL (open_blobs):
  /path, ./path, file:///path                  LocalBlobs: a folder (the embedded default)
  azure://<container>[/<prefix>]               AzureBlobs; credentials from the environment:
      AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL with
      AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_ACCOUNT_URL with DefaultAzureCredential
  https://<account>.blob.core.windows.net/<container>[/<prefix>][?<sas>]
      AzureBlobs with the SAS in the URL, or DefaultAzureCredential without one
  http://127.0.0.1:10000/<account>/<container>[/<prefix>][?<sas>]
      path-style (Azurite, emulators): when the host is an IP address, localhost
      or a single-label name, the first path segment is the account

Secrets never leave this module: `describe()` gives the URL without query or key,
error messages name the key and the service's error code only, and urllib3's debug
log lines (which carry full request URLs) have SAS signatures redacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if missing), held across processes and threads."""
    with Path(path).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class StoreError(RuntimeError):
    """The store could not be reached or answered with an error; worth retrying later."""


class NotFoundError(StoreError):
    pass


class ConflictError(StoreError):
    """A conditional write lost: the key exists, or changed since it was read."""


class AccessDeniedError(StoreError):
    """The store refused these credentials for this operation (HTTP 401/403), e.g. a
    node's read-only SAS used to promote or publish."""


class Blobs(Protocol):
    def describe(self) -> str: ...

    def read(self, key: str) -> tuple[bytes, str]: ...

    def read_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None: ...

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str: ...

    def upload(self, key: str, path: Path) -> None: ...

    def download(self, key: str, out: IO[bytes], offset: int = 0) -> None: ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def ensure_container(self) -> None: ...


# --- a local folder ------------------------------------------------------------------------
class LocalBlobs:
    """A folder as a blob store. Writes go to a temporary file and are renamed into
    place, so readers see whole objects; conditional writes hold an flock, so two
    processes promoting at once behave as they would against Azure."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def describe(self) -> str:
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents:
            raise ValueError(f"key {key!r} escapes the store root")
        return p

    @staticmethod
    def _etag(data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'

    def _missing(self, key: str) -> StoreError:
        """A key not found: missing from a present store, or the whole store is gone
        (an unmounted share), which is an unreachable store and worth retrying."""
        if not self.root.is_dir():
            return StoreError(f"{self.root}: the store folder is not there (unmounted?)")
        return NotFoundError(f"{key}: not in {self.describe()}")

    def ensure_container(self) -> None:
        """Create the store folder (publishers only; a node never creates a store)."""
        self.root.mkdir(parents=True, exist_ok=True)

    def read(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            raise StoreError(f"{key}: {exc}") from exc
        return data, self._etag(data)

    def read_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        data, new = self.read(key)
        return None if new == etag else (data, new)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: the store folder does not exist")
        with flocked(self.root / ".lock"):
            yield

    def _replace(self, path: Path, write: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        path = self._path(key)
        with self._locked():
            if if_absent and path.exists():
                raise ConflictError(f"{key} already exists")
            if if_match is not None:
                current = self._etag(path.read_bytes()) if path.exists() else None
                if current != if_match:
                    raise ConflictError(f"{key} changed since it was read")
            self._replace(path, lambda f: f.write(data))
        return self._etag(data)

    def upload(self, key: str, path: Path) -> None:
        if not self.root.is_dir():
            raise self._missing(key)
        with Path(path).open("rb") as src:
            self._replace(self._path(key), lambda f: shutil.copyfileobj(src, f, 1 << 20))

    def download(self, key: str, out: IO[bytes], offset: int = 0) -> None:
        try:
            with self._path(key).open("rb") as src:
                src.seek(offset)
                shutil.copyfileobj(src, out, 1 << 20)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc
        except OSError as exc:
            raise StoreError(f"{key}: {exc}") from exc

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not self.root.is_dir():
            raise self._missing(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


# --- Azure Blob Storage ---------------------------------------------------------------------
_SAS_SIG = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)


class _RedactSas(logging.Filter):
    """urllib3 logs every request line at DEBUG, query string (and SAS signature) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "sig=" in str(record.msg).lower() or any("sig=" in str(a).lower() for a in record.args or ()):
            record.msg = _SAS_SIG.sub(r"\1REDACTED", record.getMessage())
            record.args = None
        return True


_redact_sas = _RedactSas()


def _is_path_style(host: str) -> bool:
    """Azurite and other emulators are addressed as http://host:port/<account>/<container>."""
    if host == "localhost" or "." not in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AzureBlobs:
    """A container (and optional prefix) in Azure Blob Storage, or Azurite.

    Timeouts and retries are short on purpose: a node polls often and must learn
    quickly that the store is down or hung; the model cache retries downloads itself
    and resumes where a cut-off transfer stopped. Small requests (pointers,
    manifests, listings) wait `small_read_timeout` seconds for an answer; streamed
    downloads wait the client's read_timeout per socket read.
    """

    def __init__(self, container: Any, prefix: str, url: str, small_read_timeout: float = 5.0) -> None:
        self.container, self.prefix, self._url = container, prefix.strip("/"), url
        self._small: dict[str, Any] = {"read_timeout": small_read_timeout}

    @classmethod
    def from_url(cls, url: str, *, small_read_timeout: float = 5.0, **client_options: Any) -> AzureBlobs:
        """`client_options` go to BlobServiceClient (e.g. max_chunk_get_size, retry_policy)."""
        from azure.storage.blob import BlobServiceClient, LinearRetry

        # One retry after about a second: the SDK's default (exponential from 15 s, three retries)
        # would keep a poll of a down store hanging for most of a minute.
        retry = LinearRetry(backoff=1, random_jitter_range=1, retry_total=1)  # waits 0-2 s
        opts: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30, "retry_policy": retry}
        opts.update(client_options)
        parts = urlsplit(url)
        path = parts.path.strip("/")
        if parts.scheme == "azure":
            container, _, prefix = (parts.netloc + "/" + path).strip("/").partition("/")
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            account_url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
            if conn:
                service = BlobServiceClient.from_connection_string(conn, **opts)
            elif account_url:
                service = BlobServiceClient(account_url.rstrip("/"), credential=_sas_or_identity(), **opts)
            else:
                raise StoreError(
                    f"{url.partition('?')[0]}: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL "
                    "(with AZURE_STORAGE_SAS_TOKEN, or a DefaultAzureCredential identity)"
                )
            shown = f"azure://{container}/{prefix}".rstrip("/")
        else:
            account_url = f"{parts.scheme}://{parts.netloc}"
            if _is_path_style(parts.hostname or ""):
                account, _, path = path.partition("/")
                account_url += f"/{account}"
            container, _, prefix = path.partition("/")
            credential = parts.query.lstrip("?") or _sas_or_identity(sas_allowed=False)
            service = BlobServiceClient(account_url, credential=credential, **opts)
            shown = f"{account_url}/{container}/{prefix}".rstrip("/")
        if not container:
            raise StoreError(f"{shown}: the URL names no container")
        logging.getLogger("urllib3.connectionpool").addFilter(_redact_sas)  # idempotent
        return cls(service.get_container_client(container), prefix, shown, small_read_timeout)

    def describe(self) -> str:
        return self._url

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        try:
            yield
        except ResourceNotFoundError as exc:
            if _container_missing(exc):  # the store itself is gone or misnamed: unreachable, not "no such key"
                raise StoreError(f"{key}: {self._url}: the container does not exist (ContainerNotFound)") from exc
            raise NotFoundError(f"{key}: not in {self._url}") from exc
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise ConflictError(f"{key}: {type(exc).__name__} (changed or exists since read)") from exc
        except (ClientAuthenticationError, HttpResponseError) as exc:
            code = getattr(exc, "error_code", None) or type(exc).__name__
            code = getattr(code, "value", code)  # the SDK's str enum, or a str
            if isinstance(exc, ClientAuthenticationError) or exc.status_code in (401, 403):
                raise AccessDeniedError(
                    f"{key}: {self._url} refused these credentials for this operation ({code})"
                ) from exc
            raise StoreError(f"{key}: {self._url} answered HTTP {exc.status_code} ({code})") from exc
        except AzureError as exc:
            raise StoreError(f"{key}: {self._url} unreachable or refused: {type(exc).__name__}") from exc

    def read(self, key: str) -> tuple[bytes, str]:
        with self._errors(key):
            stream = self.container.download_blob(self._key(key), **self._small)
            return stream.readall(), str(stream.properties.etag)

    def read_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotModifiedError

        if etag is None:
            return self.read(key)
        try:
            with self._errors(key):
                stream = self.container.download_blob(
                    self._key(key), etag=etag, match_condition=MatchConditions.IfModified, **self._small
                )
                return stream.readall(), str(stream.properties.etag)
        except StoreError as exc:  # "not modified": 304 from Azure, ConditionNotMet from Azurite
            if isinstance(exc.__cause__, ResourceNotModifiedError | ResourceModifiedError):
                return None
            raise

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        from azure.core import MatchConditions

        kwargs: dict[str, Any] = {"overwrite": not if_absent, **self._small}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        with self._errors(key):
            result = self.container.get_blob_client(self._key(key)).upload_blob(data, **kwargs)
            return str(result["etag"])

    def upload(self, key: str, path: Path) -> None:
        with self._errors(key), Path(path).open("rb") as f:
            self.container.upload_blob(self._key(key), f, overwrite=True, max_concurrency=2)

    def download(self, key: str, out: IO[bytes], offset: int = 0) -> None:
        with self._errors(key):
            stream = self.container.download_blob(self._key(key), offset=offset or None)
            for chunk in stream.chunks():
                out.write(chunk)

    def size(self, key: str) -> int:
        with self._errors(key):
            return int(self.container.get_blob_client(self._key(key)).get_blob_properties(**self._small).size)

    def exists(self, key: str) -> bool:
        with self._errors(key):
            return bool(self.container.get_blob_client(self._key(key)).exists(**self._small))

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        with self._errors(prefix):
            names = self.container.list_blob_names(name_starts_with=full, **self._small)
            return sorted(b[cut:] for b in names)

    def ensure_container(self) -> None:
        """Create the container if missing (publishers only; nodes have read access).

        A SAS scoped to one container may not create (or even inspect) it: then the
        container is checked by listing it, which a publisher's SAS allows."""
        from azure.core.exceptions import ResourceExistsError

        try:
            with self._errors(""), contextlib.suppress(ResourceExistsError):
                self.container.create_container(**self._small)
        except AccessDeniedError:
            try:
                with self._errors(""):
                    next(iter(self.container.list_blob_names(results_per_page=1, **self._small)), None)
            except StoreError as exc:
                if not _container_missing(exc.__cause__):
                    raise
                raise StoreError(f"{self._url}: no such container, and these credentials cannot create it") from exc


def _container_missing(exc: BaseException | None) -> bool:
    return bool(getattr(exc, "error_code", None) == "ContainerNotFound")  # a str, or the SDK's str enum


def _sas_or_identity(sas_allowed: bool = True) -> Any:
    sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN") if sas_allowed else None
    if sas:
        return sas.lstrip("?")
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def open_blobs(url: str | Path) -> Blobs:
    """The backend a store URL names (see the module docstring)."""
    text = str(url)
    scheme = urlsplit(text).scheme
    if scheme in ("azure", "https", "http"):
        return AzureBlobs.from_url(text)
    if scheme == "file":
        return LocalBlobs(Path(urlsplit(text).path))
    if scheme:
        raise ValueError(f"{text}: unknown store URL scheme {scheme!r} (a folder, file://, azure:// or https://)")
    return LocalBlobs(Path(text))
