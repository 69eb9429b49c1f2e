"""Models over HTTP: versions and channels, a version's summary (metrics, lineage,
records), and channel moves that are a person's decision (promote scope, a reason,
confirm=true for production, the key's name recorded as who)."""

from __future__ import annotations

import uuid

import pytest

from hades_perception.models.store import ModelStore
from tests.api.conftest import MODEL, Server


def fresh_channel() -> str:
    return f"qa-{uuid.uuid4().hex[:8]}"


# --- reading --------------------------------------------------------------------------------
def test_models_lists_the_store_s_models_and_what_is_served(store_server: Server, model_store: ModelStore):
    body = store_server.request("GET", "/v1/models", store_server.key("read")).json()
    assert body["source"] == "store" and body["location"] == model_store.describe()
    assert [m["name"] for m in body["models"]] == [MODEL]
    assert body["models"][0]["serving"] in ("0.0.1-test", "0.0.2-test")


def test_a_model_shows_its_versions_and_channels_with_their_history(store_server: Server):
    body = store_server.request("GET", f"/v1/models/{MODEL}", store_server.key("read")).json()
    assert [v["version"] for v in body["versions"]] == ["0.0.1-test", "0.0.2-test"]
    assert body["followed_channel"] == "production"
    production = body["channels"]["production"]
    assert {"version", "by", "at", "reason", "previous", "history"} <= set(production)


def test_a_version_shows_its_manifest_summary_metrics_lineage_and_records(store_server: Server):
    body = store_server.request("GET", f"/v1/models/{MODEL}/versions/0.0.2-test", store_server.key("read")).json()
    assert body["name"] == MODEL and body["version"] == "0.0.2-test"
    assert body["classes"] == ["root", "shoot", "seed", "occluded_root"]
    assert body["metrics"]["values"]["images"] == 2 and "model.onnx" in body["files"]
    assert isinstance(body["lineage"], dict) and body["signed"] is False
    assert body["records"]["pipeline"]["gates"][0]["gate"] == "root_iou"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models/no-such-model", 404),
        (f"/v1/models/{MODEL}/versions/9.9.9", 404),
        (f"/v1/models/{MODEL}/versions/..", 422),  # names become store keys: none may climb
        ("/v1/models/.hidden", 422),
    ],
)
def test_unknown_or_climbing_names_are_refused(store_server: Server, path: str, status: int):
    r = store_server.request("GET", path, store_server.key("read"))
    assert r.status == status, r
    assert r.json()["detail"]


def test_a_server_on_a_bundle_folder_lists_that_bundle(bundle_server: Server):
    key = bundle_server.key("read")
    body = bundle_server.request("GET", "/v1/models", key).json()
    assert body["source"] == "bundle" and body["models"][0]["name"] == MODEL
    version = body["models"][0]["serving"]
    detail = bundle_server.request("GET", f"/v1/models/{MODEL}/versions/{version}", key).json()
    assert detail["serving"] is True and detail["lineage"]["code_commit"]


# --- moving channels --------------------------------------------------------------------------
def test_promote_moves_a_channel_and_records_the_key_s_name_and_reason(store_server: Server):
    channel, key = fresh_channel(), store_server.keys.create(f"alice-{uuid.uuid4().hex[:6]}", ("read", "promote"))
    name = store_server.keys.verify(key)
    assert name is not None
    move = {"version": "0.0.2-test", "channel": channel, "reason": "gates passed on the new data"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/promote", key, json_body=move)
    assert r.status == 200, r
    assert r.json() | {"at": None, "serving": None} == {
        "model": MODEL,
        "channel": channel,
        "version": "0.0.2-test",
        "previous": None,
        "by": name.name,
        "at": None,
        "reason": "gates passed on the new data",
        "action": "promote",
        "serving": None,
    }
    pointer = store_server.request("GET", f"/v1/models/{MODEL}", key).json()["channels"][channel]
    assert pointer["by"] == name.name and pointer["version"] == "0.0.2-test"


def test_production_needs_confirm_true_and_shows_the_evidence_meanwhile(store_server: Server, model_store: ModelStore):
    before = model_store.pointer(MODEL, "production")
    move = {"version": "0.0.2-test", "channel": "production", "reason": "looks good"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/promote", store_server.key("promote"), json_body=move)
    assert r.status == 409, r
    body = r.json()
    assert body["error"] == "confirmation required" and "confirm=true" in body["detail"]
    assert any("1/1 gates passed" in line for line in body["evidence"])
    assert model_store.pointer(MODEL, "production") == before


@pytest.mark.parametrize(
    "move",
    [
        {"version": "0.0.2-test", "channel": "canary"},
        {"version": "0.0.2-test", "channel": "canary", "reason": "   "},
        {"version": "0.0.2-test", "reason": "no channel"},
        {"version": "../../etc", "channel": "canary", "reason": "climbing"},
    ],
)
def test_a_move_without_reason_or_channel_or_with_a_climbing_name_is_invalid(store_server: Server, move: dict):
    r = store_server.request("POST", f"/v1/models/{MODEL}/promote", store_server.key("promote"), json_body=move)
    assert r.status == 422, r
    assert r.json()["error"] == "invalid request"


def test_promoting_an_unpublished_version_is_404(store_server: Server):
    move = {"version": "7.7.7", "channel": fresh_channel(), "reason": "typo"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/promote", store_server.key("promote"), json_body=move)
    assert r.status == 404 and "7.7.7" in r.json()["detail"]


def test_a_read_only_key_cannot_promote_or_roll_back(store_server: Server):
    reader = store_server.key("read", "predict")
    move = {"version": "0.0.2-test", "channel": fresh_channel(), "reason": "not mine to decide"}
    for route in ("promote", "rollback"):
        r = store_server.request("POST", f"/v1/models/{MODEL}/{route}", reader, json_body=move)
        assert r.status == 403 and "'promote'" in r.json()["detail"], r


def test_rollback_returns_a_channel_to_its_previous_version(store_server: Server):
    channel, key = fresh_channel(), store_server.key("promote")
    for version in ("0.0.1-test", "0.0.2-test"):
        move = {"version": version, "channel": channel, "reason": f"try {version}"}
        assert store_server.request("POST", f"/v1/models/{MODEL}/promote", key, json_body=move).status == 200
    stale = {"version": "0.0.1-test", "channel": channel, "reason": "thought it was still 0.0.1"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/rollback", key, json_body=stale)
    assert r.status == 409 and "serves 0.0.2-test now" in r.json()["detail"]
    back = {"version": "0.0.2-test", "channel": channel, "reason": "0.0.2 misses tips"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/rollback", key, json_body=back)
    assert r.status == 200, r
    assert r.json()["version"] == "0.0.1-test" and r.json()["previous"] == "0.0.2-test"
    assert r.json()["action"] == "rollback"


def test_rolling_back_a_channel_never_set_is_404(store_server: Server):
    move = {"channel": fresh_channel(), "reason": "nothing there"}
    r = store_server.request("POST", f"/v1/models/{MODEL}/rollback", store_server.key("promote"), json_body=move)
    assert r.status == 404 and "never set" in r.json()["detail"]


def test_a_server_without_a_store_refuses_moves_with_409(bundle_server: Server):
    move = {"version": "1", "channel": "canary", "reason": "no store here"}
    r = bundle_server.request("POST", f"/v1/models/{MODEL}/promote", bundle_server.key("promote"), json_body=move)
    assert r.status == 409 and "--store" in r.json()["detail"]
