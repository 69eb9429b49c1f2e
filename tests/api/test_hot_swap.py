"""The API follows its store channel as the node does: a promotion made through the API
is fetched, verified, golden-checked and served from a later request on; a rollback
returns the served version, and no request fails meanwhile."""

from __future__ import annotations

import threading
import time

from tests.api.conftest import MODEL, Server


def served_version(server: Server, key: str) -> str:
    versions: list[str] = server.request("GET", f"/v2/models/{MODEL}", key).json()["versions"]
    return versions[0]


def wait_for_version(server: Server, key: str, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served_version(server, key) == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"still serving {served_version(server, key)} after {timeout} s, not {version}")


def test_a_promotion_is_served_at_a_later_request_and_a_rollback_undoes_it(store_server: Server, plate_png: bytes):
    key = store_server.key("read", "predict", "promote")
    assert served_version(store_server, key) == "0.0.1-test"
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def keep_predicting() -> None:
        while not stop.is_set():
            r = store_server.predict(plate_png, key)
            answers.append((r.status, r.json()["model"]["version"] if r.status == 200 else str(r)))

    client = threading.Thread(target=keep_predicting)
    client.start()
    try:
        move = {"version": "0.0.2-test", "channel": "production", "reason": "gates passed", "confirm": True}
        r = store_server.request("POST", f"/v1/models/{MODEL}/promote", key, json_body=move)
        assert r.status == 200, r
        wait_for_version(store_server, key, "0.0.2-test")
        assert store_server.predict(plate_png, key).json()["model"]["version"] == "0.0.2-test"
        back = {"version": "0.0.2-test", "channel": "production", "reason": "a tip is missed", "confirm": True}
        r = store_server.request("POST", f"/v1/models/{MODEL}/rollback", key, json_body=back)
        assert r.status == 200 and r.json()["version"] == "0.0.1-test", r
        wait_for_version(store_server, key, "0.0.1-test")
    finally:
        stop.set()
        client.join(60)
    assert answers and all(status == 200 for status, _ in answers), answers
    assert {version for _, version in answers} <= {"0.0.1-test", "0.0.2-test"}
