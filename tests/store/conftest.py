"""Azurite for the store tests: one server for the session (each test in its own
container), a private one for tests that stop or pause the server, and bundles
made from the shipped seedling model."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hades_perception.contract.bundle import file_entries, write_manifest
from hades_perception.models.blobs import AzureBlobs
from hades_perception.models.store import ModelStore
from tests.azurite import AZURITE, Azurite
from tests.conftest import REPO

SEEDLINGS = REPO / "models" / "hades-seedlings"
MODEL = "hades-seedlings"
BIG_FILE = "engines/cutoff-test.plan"  # sorts first: downloaded before the other files
BIG_BYTES = 192 << 20
_BLOCK = 16 << 20
AZURE_ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_SAS_TOKEN")

_names = itertools.count()


def _need_azurite() -> None:
    if not AZURITE.exists():
        pytest.skip(f"Azurite is not installed at {AZURITE} (scripts/setup.sh installs it with npm)")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the session, stopped at the end."""
    _need_azurite()
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """A private Azurite, for a test that stops, restarts or pauses it."""
    _need_azurite()
    server = Azurite(tmp_path / "azurite").start()
    yield server
    server.stop()


def container_name(test_name: str) -> str:
    """A valid, unique container name (3-63 lowercase letters, digits, single hyphens)."""
    base = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:50].strip("-")
    return f"{base}-{next(_names)}-{os.getpid()}"


def connect(server: Azurite, monkeypatch: pytest.MonkeyPatch, container: str) -> ModelStore:
    """A store on `container` of `server`, credentials from the connection string in the environment."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    blobs = AzureBlobs.from_url(f"azure://{container}")
    blobs.ensure_container()
    return ModelStore(blobs)


@pytest.fixture
def container(request: pytest.FixtureRequest) -> str:
    """This test's own container name."""
    return container_name(request.node.name)


@pytest.fixture
def store(azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """A store on this test's own container of the session Azurite."""
    return connect(azurite, monkeypatch, container)


@pytest.fixture
def admin(azurite: Azurite, container: str) -> Any:
    """The container seen with the account key, past the model store's rules (an admin, or an attacker)."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


BundleFactory = Callable[..., Path]


def copy_bundle(dest: Path, version: str, *, extra: dict[str, bytes | Path] | None = None, **changes: Any) -> Path:
    """The shipped seedling bundle as `version` (files hard-linked, never written to),
    with extra files and top-level manifest fields changed."""
    shutil.copytree(SEEDLINGS, dest, copy_function=_link_or_copy)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(version=version, **changes)
    for rel, content in (extra or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            _link_or_copy(str(content), str(dest / rel))
        else:
            (dest / rel).write_bytes(content)
    if extra:
        manifest["files"] = file_entries(dest)
    write_manifest(dest, manifest)
    return dest


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleFactory:
    """make_bundle(version, **manifest_changes): a bundle folder of the seedling model as `version`."""
    made = itertools.count()

    def make(version: str, **kwargs: Any) -> Path:
        return copy_bundle(tmp_path / "bundles" / f"{version}-{next(made)}", version, **kwargs)

    return make


@pytest.fixture(scope="session")
def big_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seedling model with a 192 MiB engine file of random bytes, for cut-off transfers."""
    root = tmp_path_factory.mktemp("big")
    blob = root / "big.plan"
    with blob.open("wb") as f:
        for _ in range(BIG_BYTES // _BLOCK):
            f.write(os.urandom(_BLOCK))
    return copy_bundle(root / "bundle", "2026.11.23-1-big", extra={BIG_FILE: blob})
