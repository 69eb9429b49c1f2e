"""Getting in: the app asks for an API key, checks it with the server, keeps it for the
tab only, shows who is signed in, and says plainly which pages the key's scopes do not
open. Pages are addressable (#/models), so a bookmark and Back work."""

from __future__ import annotations

from tests.web.conftest import App


class TestTheKey:
    def test_a_wrong_key_is_refused_with_a_reason(self, app: App):
        app.open()
        app.page.get_by_label("API key").fill("hpk_not-a-key")
        app.page.get_by_role("button", name="Sign in").click()
        assert "unknown or revoked" in app.page.get_by_role("alert").inner_text()
        assert app.page.get_by_role("navigation", name="Pages").count() == 0

    def test_a_good_key_shows_who_and_what_it_may_do(self, app: App):
        app.open().sign_in("read", "predict")
        who = app.page.locator(".who").inner_text()
        assert "test-" in who and "read, predict" in who

    def test_the_key_is_kept_for_the_tab_and_dropped_on_sign_out(self, app: App):
        app.open().sign_in("read")
        app.page.reload()
        app.page.get_by_role("navigation", name="Pages").wait_for()  # still signed in
        app.page.get_by_role("button", name="Sign out").click()
        app.page.get_by_label("API key").wait_for()
        assert app.page.evaluate("() => sessionStorage.length") == 0
        assert app.page.evaluate("() => localStorage.length") == 0

    def test_a_revoked_key_is_asked_for_again(self, app: App):
        app.open().sign_in("read")
        name = app.page.locator(".who").inner_text().split(" ")[0]
        app.server.keys.revoke(name)
        app.page.reload()
        app.page.get_by_label("API key").wait_for()


class TestPages:
    def test_a_page_the_key_has_no_scope_for_says_so(self, app: App):
        app.open().sign_in("read")
        app.go("Predict")
        assert "lacks the scope “predict”" in app.page.get_by_role("alert").inner_text()
        assert app.page.get_by_label("Drop a plate image here", exact=False).count() == 0

    def test_pages_are_addressable_and_back_works(self, app: App):
        app.open("#/monitoring").sign_in("read", "predict")
        app.page.get_by_role("heading", level=1, name="Monitoring").wait_for()
        app.go("Jobs")
        app.page.go_back()
        app.page.get_by_role("heading", level=1, name="Monitoring").wait_for()
        assert app.page.title() == "Monitoring · Hades Perception"

    def test_the_app_is_served_with_a_content_security_policy(self, app: App):
        response = app.page.goto(app.server.url + "/")
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
