"""API keys: created by `hades-perception keys create` (printed once, stored hashed in a
0600 file), sent as Bearer; 401 without a key or with an unknown or revoked one, 403
without the route's scope, each with a JSON body; health needs no key; and no key ever
reaches the server's log."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path

import pytest

from hades_perception.api.keys import PREFIX, KeyFile
from tests.api.conftest import MODEL, Server, executable

PROTECTED = [
    ("GET", "/v1/models"),
    ("GET", f"/v1/models/{MODEL}"),
    ("GET", f"/v1/models/{MODEL}/versions/0.0.1-test"),
    ("GET", f"/v2/models/{MODEL}"),
    ("GET", "/v2"),
    ("POST", "/v1/predict"),
    ("POST", f"/v1/models/{MODEL}/promote"),
    ("POST", f"/v1/models/{MODEL}/rollback"),
]


def keys_cli(keys_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*executable(), "keys", *args, "--keys", str(keys_file)], capture_output=True, text=True, timeout=60
    )


# --- the keys command ---------------------------------------------------------------------
def test_keys_create_prints_the_key_once_and_stores_only_its_sha256_in_a_0600_file(tmp_path: Path):
    keys_file = tmp_path / "api-keys.json"
    created = keys_cli(keys_file, "create", "lab-laptop", "--scopes", "read,predict")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith(PREFIX) and len(key) >= len(PREFIX) + 43  # 32 random bytes, URL-safe base64
    assert "not shown again" in created.stderr
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    stored = json.loads(keys_file.read_text())["keys"]
    assert stored == [
        {
            "name": "lab-laptop",
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
            "scopes": ["read", "predict"],
            "created_at": stored[0]["created_at"],
        }
    ]
    assert key not in keys_file.read_text()


def test_keys_list_shows_names_and_scopes_never_keys(tmp_path: Path):
    keys_file = tmp_path / "api-keys.json"
    key = keys_cli(keys_file, "create", "robot-7", "--scopes", "predict").stdout.strip()
    listed = keys_cli(keys_file, "list")
    assert listed.returncode == 0
    assert "robot-7" in listed.stdout and "predict" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert hashlib.sha256(key.encode()).hexdigest() not in listed.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["create", "x", "--scopes", "read,admin"], "admin"),
        (["create", "../x", "--scopes", "read"], "key name"),
        (["revoke", "nobody"], "no key named"),
    ],
)
def test_keys_refuses_unknown_scopes_odd_names_and_unknown_keys(tmp_path: Path, args: list[str], says: str):
    r = keys_cli(tmp_path / "api-keys.json", *args)
    assert r.returncode == 2 and says in r.stderr


def test_a_second_key_with_the_same_name_is_refused(tmp_path: Path):
    keys = KeyFile(tmp_path / "api-keys.json")
    keys.create("twice", ("read",))
    with pytest.raises(FileExistsError, match="revoke it first"):
        keys.create("twice", ("read",))


# --- the server -----------------------------------------------------------------------------
def test_health_needs_no_key(store_server: Server):
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        assert store_server.request("GET", path).status == 200, path


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_other_route_answers_401_without_a_key(store_server: Server, method: str, path: str):
    r = store_server.request(method, path)
    assert r.status == 401, r
    assert r.json()["error"] == "unauthorized" and "Authorization: Bearer" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_key_and_a_malformed_header_are_401(store_server: Server):
    r = store_server.request("GET", "/v1/models", PREFIX + "not-a-key-anyone-made")
    assert r.status == 401 and "unknown or was revoked" in r.json()["detail"]
    basic = store_server.request("GET", "/v1/models", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401


def test_a_key_without_the_route_s_scope_is_403_naming_the_scope(store_server: Server, plate_png: bytes):
    reader = store_server.key("read")
    r = store_server.predict(plate_png, reader)
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden" and "'predict'" in r.json()["detail"]
    assert store_server.request("GET", "/v1/models", reader).status == 200


def test_a_revoked_key_is_refused_at_its_next_request_without_a_restart(store_server: Server):
    created = keys_cli(store_server.keys.path, "create", "to-revoke", "--scopes", "read")
    key = created.stdout.strip()
    assert store_server.request("GET", "/v1/models", key).status == 200
    assert keys_cli(store_server.keys.path, "revoke", "to-revoke").returncode == 0
    r = store_server.request("GET", "/v1/models", key)
    assert r.status == 401 and "revoked" in r.json()["detail"]


def test_no_key_appears_in_the_server_log_while_each_request_names_its_key(store_server: Server, plate_png: bytes):
    good, wrong = store_server.key("read", "predict"), PREFIX + "a-wrong-key-that-must-not-be-logged"
    store_server.predict(plate_png, good)
    store_server.request("GET", "/v1/models", good)
    store_server.request("GET", "/v1/models", wrong)
    store_server.request("GET", "/v1/models?api_key=" + wrong)
    log = store_server.log()
    assert good not in log and wrong not in log
    name = store_server.keys.verify(good)
    assert name is not None and "POST /v1/predict 200" in log and f"key={name.name}" in log
