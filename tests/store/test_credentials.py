"""Least privilege and secrecy: nodes poll and fetch with a read+list SAS that cannot
move channels or publish, publishers use a write SAS, path-style (Azurite) URLs name
the account before the container, and neither the account key nor a SAS signature
ever shows in describe(), CLI output, logs or error tracebacks."""

from __future__ import annotations

import logging
import re
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from hades_perception.models.blobs import AccessDeniedError, AzureBlobs, NotFoundError, StoreError
from hades_perception.models.cache import ModelCache
from hades_perception.models.cli import main
from hades_perception.models.store import ModelStore
from tests.azurite import ACCOUNT, KEY, Azurite
from tests.store.conftest import AZURE_ENV, MODEL, BundleFactory, container_name

V1, V2, V3 = "2026.11.26-1", "2026.11.26-2", "2026.11.26-3"
READ = {"read": True, "list": True}
WRITE = {"read": True, "list": True, "add": True, "create": True, "write": True}


def container_sas(container: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return str(
        generate_container_sas(
            ACCOUNT,
            container,
            account_key=KEY,
            permission=ContainerSasPermissions(**permissions),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
    )


def signature_forms(sas: str) -> list[str]:
    """A SAS signature as it is in the token (URL-encoded) and decoded."""
    encoded = next(v for k, _, v in (p.partition("=") for p in sas.split("&")) if k == "sig")
    return [encoded, unquote(encoded)]


def sas_url(server: Azurite, container: str, sas: str) -> str:
    """Azurite's path-style container URL: http://127.0.0.1:<port>/<account>/<container>?<sas>."""
    return f"http://127.0.0.1:{server.port}/{ACCOUNT}/{container}?{sas}"


def use_node_sas(monkeypatch: pytest.MonkeyPatch, server: Azurite, sas: str) -> None:
    """A node's environment: the account URL and a SAS token, no connection string."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", f"http://127.0.0.1:{server.port}/{ACCOUNT}")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out + err


@pytest.mark.parametrize(
    ("url", "account", "container", "prefix", "shown"),
    [
        (
            "http://127.0.0.1:10000/devstoreaccount1/models/team-a?sv=2026-10-06&sig=c2VjcmV0",
            "devstoreaccount1",
            "models",
            "team-a",
            "http://127.0.0.1:10000/devstoreaccount1/models/team-a",
        ),
        (
            "http://localhost:10000/devstoreaccount1/models?sv=2026-10-06&sig=c2VjcmV0",
            "devstoreaccount1",
            "models",
            "",
            "http://localhost:10000/devstoreaccount1/models",
        ),
        (
            "https://hadesmodels.blob.core.windows.net/models/team-a/x?sv=2026-10-06&sig=c2VjcmV0",
            "hadesmodels",
            "models",
            "team-a/x",
            "https://hadesmodels.blob.core.windows.net/models/team-a/x",
        ),
    ],
)
def test_blob_urls_name_account_container_and_prefix_in_both_styles(
    url: str, account: str, container: str, prefix: str, shown: str
):
    """Path-style hosts (IP address, localhost) put the account first; <account>.blob.core.windows.net in the host."""
    blobs = AzureBlobs.from_url(url)
    assert (blobs.container.account_name, blobs.container.container_name, blobs.prefix) == (account, container, prefix)
    assert blobs.describe() == shown


@pytest.fixture
def shared(azurite: Azurite, admin: Any, container: str) -> dict[str, str]:
    """This test's container, created by an admin, and SAS tokens for it: a node's (read+list) and a publisher's."""
    admin.create_container()
    return {"read": container_sas(container, **READ), "write": container_sas(container, **WRITE)}


def test_a_publishers_write_sas_publishes_and_promotes_through_the_cli(
    azurite: Azurite,
    container: str,
    shared: dict[str, str],
    make_bundle: BundleFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """hades-model --store http://127.0.0.1:<port>/devstoreaccount1/<container>?<write SAS> publishes and promotes."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    url = sas_url(azurite, container, shared["write"])
    rc, out = cli(capsys, "--store", url, "publish", str(make_bundle(V1)))
    assert rc == 0, out
    assert f"published {MODEL} {V1} to http://127.0.0.1:{azurite.port}/{ACCOUNT}/{container}," in out
    rc, out = cli(capsys, "--store", url, "promote", MODEL, V1, "--channel", "canary", "--reason", "ok", "--by", "ci")
    assert rc == 0, out
    got = ModelStore.open(url).pointer(MODEL, "canary")
    assert got is not None and got[0].version == V1


def test_a_write_sas_cannot_create_a_missing_container(
    azurite: Azurite, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """A SAS for a container that does not exist: publish fails, saying so, instead of writing anywhere."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    missing = container_name("never-created")
    url = sas_url(azurite, missing, container_sas(missing, **WRITE))
    rc, out = cli(capsys, "--store", url, "publish", str(make_bundle(V1)))
    assert rc == 1 and "no such container, and these credentials cannot create it" in out
    with pytest.raises(StoreError, match="no such container") as refused:
        ModelStore.open(url).publish(make_bundle(V2))
    assert not isinstance(refused.value, NotFoundError)


def test_a_nodes_read_sas_polls_and_fetches_but_cannot_promote_or_publish(
    azurite: Azurite,
    container: str,
    shared: dict[str, str],
    make_bundle: BundleFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    """azure://<container> with AZURE_STORAGE_ACCOUNT_URL + a read+list AZURE_STORAGE_SAS_TOKEN: poll and fetch work;
    promote, rollback and publish raise AccessDeniedError (a StoreError) and change nothing."""
    publisher = ModelStore.open(sas_url(azurite, container, shared["write"]))
    for v in (V1, V2):
        publisher.publish(make_bundle(v))
    publisher.promote(MODEL, V1, "canary", "first", by="ci")
    publisher.promote(MODEL, V2, "canary", "second", by="ci")

    use_node_sas(monkeypatch, azurite, shared["read"])
    node = ModelStore.open(f"azure://{container}")
    got = node.pointer_if_changed(MODEL, "canary", None)
    assert got is not None and got[0].version == V2
    assert node.pointer_if_changed(MODEL, "canary", got[1]) is None
    fetched = ModelCache(tmp_path / "cache").fetch(node, MODEL, V2)
    assert fetched.path.is_dir() and fetched.downloaded_bytes > 0

    with pytest.raises(AccessDeniedError, match="refused these credentials"):
        node.promote(MODEL, V1, "canary", "a node must not do this", by="node")
    with pytest.raises(AccessDeniedError):
        node.rollback(MODEL, "canary", "nor this", by="node")
    with pytest.raises(AccessDeniedError):
        node.publish(make_bundle(V3))
    assert issubclass(AccessDeniedError, StoreError)
    rc, out = cli(
        capsys, "--store", f"azure://{container}", "promote", MODEL, V1, "--channel", "canary", "--reason", "x"
    )
    assert rc == 1 and "refused these credentials" in out
    assert node.pointer_if_changed(MODEL, "canary", got[1]) is None  # the pointer never moved
    assert node.versions(MODEL) == [V1, V2]  # and no half-published version is visible


def test_a_sas_that_may_list_but_not_read_fails_a_fetch_at_once_without_backoff(
    azurite: Azurite,
    container: str,
    shared: dict[str, str],
    make_bundle: BundleFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    """Refused credentials stay refused for the seconds a backoff lasts: the fetch says
    so at once (the follower retries at its next poll) and leaves nothing in the cache."""
    ModelStore.open(sas_url(azurite, container, shared["write"])).publish(make_bundle(V1))
    use_node_sas(monkeypatch, azurite, container_sas(container, list=True))
    node = ModelStore.open(f"azure://{container}")
    assert node.versions(MODEL) == [V1]  # listing is allowed
    slept: list[float] = []
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(AccessDeniedError, match="refused these credentials"):
        cache.fetch(node, MODEL, V1, sleep=slept.append)
    assert slept == []
    assert not cache.bundle_path(MODEL, V1).exists()


def test_credentials_never_appear_in_descriptions_output_logs_or_errors(
    own_azurite: Azurite,
    make_bundle: BundleFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    """Publishing, listing, promoting, pulling, a refused promote and a store that is down, with the connection
    string and with SAS tokens: the account key and SAS signatures are in no output, log record or traceback."""
    caplog.set_level(logging.DEBUG)
    from azure.storage.blob import BlobServiceClient

    container = container_name("secrets")
    BlobServiceClient.from_connection_string(own_azurite.connection_string).create_container(container)
    read, write = container_sas(container, **READ), container_sas(container, **WRITE)
    secrets = [KEY, *signature_forms(read), *signature_forms(write)]
    assert all(len(x) > 20 for x in secrets)
    seen: list[str] = []

    def run(*argv: str) -> int:
        logging.getLogger("azure").setLevel(logging.DEBUG)  # main() quietens it; look at everything
        rc, out = cli(capsys, *argv)
        seen.append(out)
        return rc

    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", own_azurite.connection_string)
    by_key = ("--store", f"azure://{container}")
    assert run(*by_key, "publish", str(make_bundle(V1))) == 0
    assert run(*by_key, "list", MODEL) == 0
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    by_sas = ("--store", sas_url(own_azurite, container, write))
    assert run(*by_sas, "publish", str(make_bundle(V2))) == 0
    assert run(*by_sas, "promote", MODEL, V2, "--channel", "canary", "--reason", "ok") == 0
    assert run(*by_sas, "--json", "show", MODEL, "canary") == 0
    use_node_sas(monkeypatch, own_azurite, read)
    assert run("--store", f"azure://{container}", "pull", MODEL, V2, "--cache", str(tmp_path / "cache")) == 0
    assert run("--store", f"azure://{container}", "promote", MODEL, V1, "--channel", "canary", "--reason", "no") == 1

    stores = [ModelStore.open(f"azure://{container}"), ModelStore.open(sas_url(own_azurite, container, read))]
    seen += [s.describe() for s in stores]
    own_azurite.stop()
    assert run(*by_sas, "list", MODEL) == 1
    for s in stores:
        with pytest.raises(StoreError) as failure:
            s.pointer_if_changed(MODEL, "canary", None)
        seen.append("".join(traceback.format_exception(failure.value)))

    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) > 10  # the SDK's and urllib3's debug logs were really captured
    for text in seen + logged:
        assert not any(secret in text for secret in secrets), text
    assert not any("sig=" in text for text in seen)
    assert not [t for t in logged if re.search(r"sig=(?!REDACTED|\*)", t)]
