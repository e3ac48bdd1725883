"""The edition pages beyond the review: planned sends, results, odd edition numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.editions.drafting import draft_edition
from newsletter.staff.accounts import add_user
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.webharness import STAFF_PASSWORD, WebHarness, csrf_token, web_harness

STAFF_EMAIL = "redactie@rvjeugdzorg.nl"
TOO_BIG = 2**63  # one past SQLite's largest integer


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(
        make_settings,
        clock,
        feed={"urls": [str(SEEDS_FEED)]},
        schedule={"staff": ["hoofdredactie@rvjeugdzorg.nl"]},
    ) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", STAFF_PASSWORD, email=STAFF_EMAIL, now=clock())
        yield harness


@pytest.fixture
def edition(web: WebHarness) -> int:
    fetch_all(web.settings, web.database, clock=web.clock)
    result = draft_edition(web.settings, web.database, clock=web.clock.later(minutes=1))
    assert result.number is not None
    return result.number


def post(client: TestClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """Post a form from the staff pages as the browser would (with the CSRF token)."""
    token = csrf_token(client.get("/admin").text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, follow_redirects=False)


@pytest.mark.parametrize("number", [TOO_BIG, 10**30])
def test_an_edition_number_too_big_for_the_database_is_not_found(
    web: WebHarness, staff: TestClient, edition: int, number: int
) -> None:
    before = web.snapshot()
    base = f"/admin/editions/{number}"
    for path in (base, f"{base}/preview.html", f"{base}/progress"):
        assert staff.get(path).status_code == 404, path
    for path, data in (
        (f"{base}/text", {"subject": "Nieuw", "intro": ""}),
        (f"{base}/send", {"confirm": "yes"}),
        (f"{base}/test", {"address": STAFF_EMAIL}),
        (f"{base}/articles/1", {"action": "remove"}),
        (f"/admin/editions/{edition}/articles/{number}", {"action": "remove"}),
    ):
        assert post(staff, path, data).status_code == 404, path
    assert web.snapshot() == before
