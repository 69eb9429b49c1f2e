"""The monitoring page shows the served version's drift now and over time, from the
frames this server predicted; the jobs page shows jobs with their status and log."""

from __future__ import annotations

from hades_perception.api.served_drift import HISTORY_EVERY
from tests.api.conftest import PLATES
from tests.web.conftest import App


def test_drift_now_and_over_time(app: App):
    key = app.server.key("predict")
    for i in range(HISTORY_EVERY):
        assert app.server.predict(PLATES[i % len(PLATES)].read_bytes(), key).status == 200
    history = app.server.request("GET", "/v1/monitoring/drift/history", app.server.key("read")).json()
    app.open().sign_in("read")
    app.go("Monitoring")
    message = app.page.get_by_test_id("drift-message")
    message.wait_for()
    served = history["model"]
    assert f"{served['name']} {served['version']}" in message.inner_text()
    assert app.page.locator(".level").first.inner_text() in ("OK", "WARN", "ERROR")
    app.page.get_by_text("Points as a table").click()
    rows = app.page.get_by_test_id("drift-points").locator("tbody tr")
    assert rows.count() == len(history["points"]) >= 1
    assert app.page.get_by_role("img", name="Most extreme signal", exact=False).count() == 1


def test_a_batch_job_with_its_status_and_log(app: App):
    key = app.server.key("predict")
    r = app.server.post_files(
        "/v1/predict/batch", key, [("images", (p.name, p.read_bytes(), "image/png")) for p in PLATES[:2]]
    )
    assert r.status == 202, r
    job = r.json()["job"]
    assert app.server.wait_job(job, key)["status"] == "done"
    app.open().sign_in("predict")
    app.go("Jobs")
    row = app.page.get_by_test_id("jobs").get_by_role("row", name=job)
    assert "batch" in row.inner_text() and "done" in row.inner_text()
    row.get_by_role("button", name=f"Show {job}").click()
    app.page.get_by_role("heading", name=f"Job {job} (batch): done").wait_for()
    assert "predicted 2" in app.page.locator("#content").inner_text()
