"""GET /v1/monitoring/drift judges the frames this server predicted (single requests and
batch images alike) against the served bundle's reference signals, with the node's test,
window and minimum; GET /v1/monitoring/reports lists what monitor jobs wrote
(test_jobs.py runs one)."""

from __future__ import annotations

from typing import Any

from hades_perception.api.served_drift import HISTORY_EVERY, ServedDrift
from hades_perception.contract.bundle import open_bundle
from hades_perception.monitoring.drift import reference_of
from hades_perception.monitoring.signals import signals_for
from tests.api.conftest import PLATES, TINY, Server


def drift(server: Server) -> dict[str, Any]:
    r = server.request("GET", "/v1/monitoring/drift", server.key("read"))
    assert r.status == 200, r
    body: dict[str, Any] = r.json()
    return body


def test_the_window_fills_with_single_predictions_and_batch_images_then_is_judged(drift_server: Server):
    before = drift(drift_server)
    assert before["model"] == {"name": "hades-seedlings", "version": "0.0.1-test"}
    assert before["frames"] == 0 and before["message"] == "no frames predicted by this version yet"
    assert (before["window"], before["min_frames"]) == (50, 20)  # the node's defaults

    key = drift_server.key("predict")
    assert drift_server.predict(PLATES[0].read_bytes(), key).status == 200
    one = drift(drift_server)
    assert one["frames"] == 1 and one["message"] == "collecting frames (1 of 20)" and one["signals"] == []

    files = [("images", (f"{i}.png", PLATES[i % 2].read_bytes(), "image/png")) for i in range(19)]
    job = drift_server.post_files("/v1/predict/batch", key, files).json()["job"]
    assert drift_server.wait_job(job, key)["counts"]["predicted"] == 19
    judged = drift(drift_server)
    assert judged["frames"] == 20 and not judged["message"].startswith("collecting")
    names = {s["name"] for s in judged["signals"]}
    known = {s.name for s in signals_for(("root", "shoot", "seed", "occluded_root"))}
    # Every signal the bundle has a reference for is tested; one it has none for (a signal
    # newer than the bundle) is left out, never alarmed on.
    assert names == known & set(reference_of(open_bundle(TINY).raw))
    assert judged["level"] in ("OK", "WARN", "ERROR")
    worst = max(judged["signals"], key=lambda s: ["OK", "WARN", "ERROR"].index(s["level"]))
    assert worst["level"] == judged["level"]
    assert {"statistic", "value", "threshold", "shift", "effect", "drifted"} <= set(worst)

    # ... and over time: a point every HISTORY_EVERY frames (the web app's monitoring page).
    r = drift_server.request("GET", "/v1/monitoring/drift/history", drift_server.key("read"))
    assert r.status == 200, r
    history = r.json()
    assert history["model"] == before["model"] and history["every"] == HISTORY_EVERY
    points = history["points"]
    assert [p["frames_seen"] for p in points] == list(range(HISTORY_EVERY, 21, HISTORY_EVERY))
    assert points[-1]["window_frames"] == 20 and points[-1]["level"] == judged["level"]
    assert points[0]["level"] == "OK" and points[0]["worst_ratio"] is None  # still collecting: nothing judged


def test_drift_needs_the_read_scope(drift_server: Server):
    assert drift_server.request("GET", "/v1/monitoring/drift", drift_server.key("predict")).status == 403
    assert drift_server.request("GET", "/v1/monitoring/drift/history", drift_server.key("predict")).status == 403
    assert drift_server.request("GET", "/v1/monitoring/reports").status == 401


def test_a_server_without_monitor_jobs_lists_no_reports(drift_server: Server):
    r = drift_server.request("GET", "/v1/monitoring/reports", drift_server.key("read"))
    assert r.status == 200 and r.json() == {"reports": []}


# --- the windows, without a server ---------------------------------------------------------------
def test_each_version_has_a_window_of_its_own_and_only_the_last_few_are_kept():
    manifest = open_bundle(TINY)
    other = type(manifest).from_dict({**manifest.raw, "version": "0.0.2-test"})
    drift = ServedDrift(window=5, min_frames=2, keep_versions=1)
    frame = {"input.p50": 120.0}
    for _ in range(7):
        drift.add(manifest, frame)
    assert drift.summary(manifest)["frames"] == 5, "the window holds the last 5"
    drift.add(other, frame)
    assert drift.summary(other)["frames"] == 1
    assert drift.summary(manifest)["frames"] == 0, "only one version's window is kept"
    assert drift.history(manifest) == [], "nor its history"
    assert [p["frames_seen"] for p in drift.history(other)] == []
