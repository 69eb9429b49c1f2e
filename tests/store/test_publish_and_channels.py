"""Publishing immutable versions and moving channels, against Azurite, through the
API and through `hades-model`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hades_perception.models.blobs import ConflictError, NotFoundError
from hades_perception.models.cli import evidence_text, main
from hades_perception.models.store import ModelStore
from tests.azurite import Azurite
from tests.store.conftest import MODEL, BundleFactory, connect

V1, V2, V3 = "2026.11.20-1", "2026.11.21-1", "2026.11.22-1"


def _publish_all(store: ModelStore, make_bundle: BundleFactory, *versions: str) -> None:
    for v in versions:
        _, new = store.publish(make_bundle(v))
        assert new


def test_a_published_version_is_listed_with_its_manifest(store: ModelStore, make_bundle: BundleFactory, admin: Any):
    """publish uploads every listed file and the manifest; versions, models and manifest read it back."""
    bundle = make_bundle(V1)
    manifest, new = store.publish(bundle)
    assert new and manifest["version"] == V1
    assert store.models() == [MODEL]
    assert store.versions(MODEL) == [V1]
    assert store.manifest(MODEL, V1) == json.loads((bundle / "manifest.json").read_text())
    assert not store.is_signed(MODEL, V1)
    stored = set(admin.list_blob_names(name_starts_with=f"{MODEL}/versions/{V1}/"))
    assert stored == {f"{MODEL}/versions/{V1}/{rel}" for rel in [*manifest["files"], "manifest.json"]}


def test_stores_under_different_prefixes_of_one_container_are_separate(
    azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch, make_bundle: BundleFactory, admin: Any
):
    """azure://<container>/<prefix> keeps every key under the prefix; another prefix sees nothing of it."""
    team_a = connect(azurite, monkeypatch, f"{container}/team-a")
    team_b = ModelStore.open(f"azure://{container}/team-b")
    team_a.publish(make_bundle(V1))
    assert team_a.describe() == f"azure://{container}/team-a"
    assert team_a.versions(MODEL) == [V1] and team_b.versions(MODEL) == [] and team_b.models() == []
    assert all(name.startswith("team-a/") for name in admin.list_blob_names())


def test_republishing_an_identical_manifest_uploads_nothing(store: ModelStore, make_bundle: BundleFactory, admin: Any):
    """A retried pipeline step is harmless: the same manifest again is reported as already published."""
    bundle = make_bundle(V1)
    store.publish(bundle)
    onnx = admin.get_blob_client(f"{MODEL}/versions/{V1}/model.onnx")
    etag = onnx.get_blob_properties().etag
    manifest, new = store.publish(bundle)
    assert not new and manifest["version"] == V1
    assert onnx.get_blob_properties().etag == etag


def test_a_different_manifest_under_a_published_version_is_refused(store: ModelStore, make_bundle: BundleFactory):
    """Versions are immutable: republishing a changed bundle under the same version raises ConflictError."""
    store.publish(make_bundle(V1))
    before = store.manifest(MODEL, V1)
    with pytest.raises(ConflictError, match="immutable"):
        store.publish(make_bundle(V1, created_at="2026-11-30T00:00:00+00:00"))
    assert store.manifest(MODEL, V1) == before


def test_promote_needs_a_reason_and_a_published_version(store: ModelStore, make_bundle: BundleFactory):
    """A blank reason or an unpublished version is refused, and the channel stays unset."""
    store.publish(make_bundle(V1))
    with pytest.raises(ValueError, match="reason is required"):
        store.promote(MODEL, V1, "canary", "   ")
    with pytest.raises(NotFoundError, match="not published"):
        store.promote(MODEL, "2099.01.01-1", "canary", "does not exist")
    assert store.pointer(MODEL, "canary") is None


def test_pointer_records_who_when_why_and_previous(store: ModelStore, make_bundle: BundleFactory):
    """Each move stores the version, who moved it, when, why and the version before, newest history first."""
    _publish_all(store, make_bundle, V1, V2)
    t0 = datetime.now(UTC).replace(microsecond=0)
    store.promote(MODEL, V1, "canary", "first field trial", by="alice")
    p = store.promote(MODEL, V2, "canary", "better shoot IoU", by="bob")
    got = store.pointer(MODEL, "canary")
    assert got is not None
    pointer, etag = got
    assert pointer == p and etag
    assert (pointer.version, pointer.previous, pointer.by, pointer.reason, pointer.action) == (
        V2,
        V1,
        "bob",
        "better shoot IoU",
        "promote",
    )
    assert t0 <= datetime.fromisoformat(pointer.at) <= datetime.now(UTC) + timedelta(seconds=1)
    assert [(m.version, m.by, m.reason) for m in pointer.history] == [(V1, "alice", "first field trial")]
    assert store.channels(MODEL) == {"canary": pointer}


def test_rolling_back_twice_goes_two_steps_back(store: ModelStore, make_bundle: BundleFactory):
    """After v1, v2, v3: rollback serves v2, a second rollback serves v1, a third has nowhere to go."""
    _publish_all(store, make_bundle, V1, V2, V3)
    for v in (V1, V2, V3):
        store.promote(MODEL, v, "production", f"ship {v}", by="alice")
    first = store.rollback(MODEL, "production", "v3 misses shoots", by="carol")
    assert (first.version, first.previous, first.action, first.by) == (V2, V3, "rollback", "carol")
    second = store.rollback(MODEL, "production", "v2 too", by="carol")
    assert (second.version, second.previous, second.action) == (V1, V2, "rollback")
    with pytest.raises(NotFoundError, match="no earlier version"):
        store.rollback(MODEL, "production", "and again", by="carol")
    assert [m.version for m in second.moves()] == [V1, V2, V3, V2, V1]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_cli_publishes_lists_shows_promotes_and_rolls_back(
    azurite: Azurite,
    container: str,
    monkeypatch: pytest.MonkeyPatch,
    make_bundle: BundleFactory,
    capsys: pytest.CaptureFixture[str],
):
    """hades-model --store azure://<container> does the whole cycle with the connection string from the environment."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    s = ("--store", f"azure://{container}")
    b1, b2 = make_bundle(V1), make_bundle(V2)

    rc, out, _ = _cli(capsys, *s, "publish", str(b1))
    assert rc == 0 and f"published {MODEL} {V1} to azure://{container}, unsigned" in out
    rc, out, _ = _cli(capsys, *s, "publish", str(b1))
    assert rc == 0 and "already in" in out and "nothing uploaded" in out
    rc, _, err = _cli(capsys, *s, "publish", str(make_bundle(V1, created_at="2026-11-30T00:00:00+00:00")))
    assert rc == 1 and "immutable" in err
    assert _cli(capsys, *s, "publish", str(b2))[0] == 0

    rc, out, _ = _cli(capsys, *s, "--json", "list")
    assert rc == 0 and json.loads(out) == [MODEL]
    rc, out, _ = _cli(capsys, *s, "--json", "show", MODEL, V2)
    assert rc == 0 and json.loads(out)["version"] == V2 and json.loads(out)["signed"] is False

    rc, _, err = _cli(capsys, *s, "promote", MODEL, V1, "--channel", "canary", "--reason", " ")
    assert rc == 1 and "reason is required" in err
    rc, _, err = _cli(capsys, *s, "promote", MODEL, "2099.01.01-1", "--channel", "canary", "--reason", "x")
    assert rc == 1 and "not published" in err
    for v in (V1, V2):
        rc, out, _ = _cli(capsys, *s, "promote", MODEL, v, "--channel", "canary", "--reason", f"try {v}", "--by", "dan")
        assert rc == 0 and f"-> {v} (by dan: try {v})" in out

    rc, out, _ = _cli(capsys, *s, "--json", "list", MODEL)
    listing = json.loads(out)
    assert [r["version"] for r in listing["versions"]] == [V1, V2]
    assert listing["versions"][1]["channels"] == ["canary"] and listing["channels"]["canary"]["previous"] == V1

    rc, out, _ = _cli(capsys, *s, "rollback", MODEL, "--channel", "canary", "--reason", "roots missed", "--by", "eve")
    assert rc == 0 and f"rolled back: {V2} -> {V1}" in out
    rc, out, _ = _cli(capsys, *s, "--json", "show", MODEL, "canary")
    shown = json.loads(out)
    assert (shown["version"], shown["previous"], shown["by"], shown["reason"], shown["action"]) == (
        V1,
        V2,
        "eve",
        "roots missed",
        "rollback",
    )
    assert [m["version"] for m in shown["history"]] == [V2, V1]


def test_the_cli_pulls_a_version_into_a_cache(
    store: ModelStore,
    make_bundle: BundleFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    """hades-model pull downloads and verifies a version into a node's cache folder."""
    store.publish(make_bundle(V1))
    cache = tmp_path / "cache"
    rc, out, _ = _cli(capsys, "--store", store.describe(), "pull", MODEL, V1, "--cache", str(cache))
    assert rc == 0 and "verified in" in out
    assert (cache / MODEL / "versions" / V1 / "manifest.json").is_file()


def test_the_evidence_of_a_hand_attached_record_without_the_pipelines_fields_is_still_shown():
    """`hades-model attach` takes any JSON: a gate without value or bound, or a stray item,
    is shown as unknown, and promotion to production is not broken by it."""
    lines = evidence_text(
        {
            "pipeline": {"decision": "candidate", "gates": [{"gate": "root_iou", "passed": True}, "not a gate"]},
            "drift": {"drift_detected": True, "signals": [{"drifted": True}], "frames": 12},
        }
    )
    assert lines[0].startswith("retraining pipeline: candidate") and "1/1 gates passed" in lines[0]
    assert "ok   root_iou: ? (bound ?)" in lines[1]
    assert lines[2] == "drift: drift in ? over 12 frames"
