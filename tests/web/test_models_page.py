"""The models page: channels with their history, versions with metrics; promotion and
rollback only after a confirmation dialog, production only with the person's explicit
"I read the evidence" — and what the dialog does is what the store then says."""

from __future__ import annotations

from hades_perception.models.store import ModelStore
from tests.api.conftest import MODEL
from tests.web.conftest import App


def channel(store: ModelStore, name: str) -> str | None:
    got = store.pointer(MODEL, name)
    return None if got is None else got[0].version


def open_models(app: App) -> App:
    app.open().sign_in("read", "promote")
    app.go("Models")
    app.page.get_by_test_id("versions").wait_for()
    return app


def promote(app: App, version: str, to: str) -> None:
    app.page.get_by_label("Version", exact=True).select_option(version)
    app.page.get_by_label("Channel", exact=True).select_option(to)
    app.page.get_by_role("button", name="Promote…").click()
    app.page.get_by_role("dialog").wait_for()


class TestWhatIsShown:
    def test_versions_channels_and_their_history(self, app: App, web_store: ModelStore):
        open_models(app)
        versions = app.page.get_by_test_id("versions").inner_text()
        assert "0.0.1-test" in versions and "0.0.2-test" in versions
        production = app.page.get_by_test_id("channels").get_by_role("row", name="production")
        assert channel(web_store, "production") in production.inner_text()
        assert "test-setup" in production.inner_text()  # who moved it, in its history

    def test_a_versions_metrics_and_records(self, app: App):
        open_models(app)
        app.page.get_by_role("button", name="Show 0.0.2-test").click()
        app.page.get_by_test_id("metrics").wait_for()
        assert app.page.get_by_test_id("metrics").locator("tr").count() > 0
        app.page.get_by_text("Lineage and records").click()
        assert '"decision": "candidate"' in app.page.locator("pre").first.inner_text()


class TestMovingChannels:
    def test_promote_to_canary_after_the_dialog(self, app: App, web_store: ModelStore):
        open_models(app)
        promote(app, "0.0.2-test", "canary")
        dialog = app.page.get_by_role("dialog")
        assert "Promote hades-seedlings 0.0.2-test to canary?" in dialog.inner_text()
        dialog.get_by_label("Reason").fill("try it on the lab robot")
        dialog.get_by_role("button", name="Promote").click()
        app.page.get_by_role("status").filter(has_text="canary now serves 0.0.2-test").wait_for()
        assert channel(web_store, "canary") == "0.0.2-test"
        moved = web_store.pointer(MODEL, "canary")
        assert moved is not None and moved[0].reason == "try it on the lab robot"
        assert moved[0].by.startswith("test-")  # the key's name, not the browser's say-so

    def test_escape_cancels_and_nothing_moves(self, app: App, web_store: ModelStore):
        before = channel(web_store, "production")
        open_models(app)
        promote(app, "0.0.2-test", "production")
        app.page.keyboard.press("Escape")
        app.page.get_by_role("dialog").wait_for(state="hidden")
        assert channel(web_store, "production") == before

    def test_production_shows_the_evidence_and_needs_the_persons_confirmation(self, app: App, web_store: ModelStore):
        assert channel(web_store, "production") == "0.0.1-test"
        open_models(app)
        promote(app, "0.0.2-test", "production")
        dialog = app.page.get_by_role("dialog")
        evidence = dialog.get_by_role("list").inner_text()  # the server's account of the version's records
        assert "retraining pipeline: candidate against 0.0.1-test" in evidence and "1/1 gates passed" in evidence
        dialog.get_by_label("Reason").fill("gates passed on the lab's plates")
        dialog.get_by_role("button", name="Promote").click()
        # The box is required: the browser does not send the form without it.
        assert dialog.is_visible() and channel(web_store, "production") == "0.0.1-test"
        dialog.get_by_label("I read the evidence", exact=False).check()
        dialog.get_by_role("button", name="Promote").click()
        app.page.get_by_role("status").filter(has_text="production now serves 0.0.2-test").wait_for()
        assert channel(web_store, "production") == "0.0.2-test"

        # ... and rolled back the same way, from the channel's row.
        row = app.page.get_by_test_id("channels").get_by_role("row", name="production")
        row.get_by_role("button", name="Roll back production…").click()
        dialog.get_by_label("Reason").fill("tips drifted on plate 7")
        dialog.get_by_label("I read the evidence", exact=False).check()
        dialog.get_by_role("button", name="Roll back").click()
        app.page.get_by_role("status").filter(has_text="production rolled back to 0.0.1-test").wait_for()
        assert channel(web_store, "production") == "0.0.1-test"

    def test_a_read_only_key_sees_no_promote_controls_and_is_refused_if_it_tries(self, app: App, web_store: ModelStore):
        before = channel(web_store, "canary")
        app.open().sign_in("read")
        app.go("Models")
        app.page.get_by_test_id("versions").wait_for()
        assert app.page.get_by_role("button", name="Promote…").count() == 0
        assert app.page.get_by_role("button", name="Roll back production…").count() == 0
        # Hidden controls are a courtesy; the server is the guard: the page's own key is refused.
        answer = app.page.evaluate(
            """async () => {
              const r = await fetch('/v1/models/hades-seedlings/promote', {method: 'POST',
                headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('hades-api-key'),
                          'Content-Type': 'application/json'},
                body: JSON.stringify({version: '0.0.2-test', channel: 'canary', reason: 'sneaking in'})});
              return [r.status, (await r.json()).detail];
            }"""
        )
        assert answer[0] == 403 and "needs 'promote'" in answer[1]
        assert channel(web_store, "canary") == before
