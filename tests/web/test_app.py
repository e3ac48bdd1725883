"""The app as a whole: no GET changes anything, whichever route it reaches."""

from __future__ import annotations

from tests.support.webharness import WebHarness, token_in


def test_no_get_changes_anything(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    web.request("wacht@example.org")
    pending_url = web.confirm_url_for("wacht@example.org")
    client = web.client()
    before = web.snapshot()
    paths = [
        "/",
        "/subscribe",
        pending_url,
        "/confirm/" + "x" * 43,
        view.unsubscribe_url,
        "/unsubscribe/nope",
        view.preferences_url,
        "/preferences/nope",
        "/healthz",
        "/static/site.css",
        "/static/favicon.svg",
        "/does-not-exist",
        "/api/subscribe",
    ]
    for path in paths:
        response = client.get(path, follow_redirects=False)
        assert response.status_code < 500, path
    assert web.snapshot() == before
    assert web.flows.pending_confirmation(token_in(pending_url)) is not None
