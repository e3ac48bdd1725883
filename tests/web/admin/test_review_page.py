"""The review and progress pages as staff use them: back to the article after a change, a
way past the previews, previews that fold, test copies only to real staff addresses, and
a progress page that refreshes when the person asks and says clearly when it is done."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.delivery.send import prepare_send, send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.staff.accounts import add_user
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.webharness import STAFF_PASSWORD, WebHarness, csrf_token, web_harness

STAFF_EMAIL = "redactie@rvjeugdzorg.nl"


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


def post(client: TestClient, path: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client.get("/admin").text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def article_ids(web: WebHarness, number: int) -> list[int]:
    with web.database.session() as session:
        return [entry.article_id for entry in get_edition(session, number).entries]


def test_after_a_move_the_page_returns_to_that_article(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    first, second, third, *_ = article_ids(web, edition)
    page = staff.get(f"/admin/editions/{edition}").text
    for article in (first, second, third):
        assert f'id="artikel-{article}"' in page

    moved = post(staff, f"/admin/editions/{edition}/articles/{second}", {"action": "down"})
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/admin/editions/{edition}?done=moved#artikel-{second}"
    assert "De volgorde is aangepast." in staff.get(moved.headers["location"]).text


def test_after_a_removal_the_page_returns_to_the_next_article(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    _, second, third, *_ = article_ids(web, edition)
    removed = post(staff, f"/admin/editions/{edition}/articles/{second}", {"action": "remove"})
    assert removed.headers["location"] == f"/admin/editions/{edition}?done=removed#artikel-{third}"
    last = article_ids(web, edition)[-1]
    removed = post(staff, f"/admin/editions/{edition}/articles/{last}", {"action": "remove"})
    before_last = article_ids(web, edition)[-1]
    assert removed.headers["location"].endswith(f"#artikel-{before_last}")


def test_a_skip_link_leads_past_the_previews_which_fold(staff: TestClient, edition: int) -> None:
    page = staff.get(f"/admin/editions/{edition}").text
    skip = re.search(r'<a [^>]*href="#([a-z-]+)"[^>]*>([^<]+)</a>', page.split("<main", 1)[1])
    assert skip, "no skip link inside the page"
    target = skip.group(1)
    assert page.index(f'id="{target}"') > page.rindex("<iframe")
    assert page.index(skip.group(0)) < page.index("<iframe")
    folds = re.search(r"<details[^>]*open[^>]*>\s*<summary[^>]*>[^<]*</summary>", page)
    assert folds, "the previews do not fold"
    assert page.index(folds.group(0)) < page.index("<iframe")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nota", "‘nota’ is geen e-mailadres."),
        ("iemand@example.org", "Een testmail gaat alleen naar je eigen adres"),
        ("", "Kies een adres uit de lijst."),
    ],
)
def test_a_test_copy_needs_a_real_staff_address(
    web: WebHarness, staff: TestClient, edition: int, address: str, message: str
) -> None:
    before = web.snapshot()
    refused = post(staff, f"/admin/editions/{edition}/test", {"address": address})
    assert refused.status_code == 400
    assert message in refused.text
    assert 'name="address"' in refused.text  # the form again, to pick another
    assert web.smtp.received == []
    assert web.snapshot() == before


def test_the_progress_page_refreshes_when_asked_and_says_when_it_is_done(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    for address in ("lezer1@example.org", "lezer2@example.org", "lezer3@example.org"):
        web.confirmed(address)
    web.smtp.faults.rcpt["lezer3@example.org"] = "550 5.1.1 unknown user"
    progress = f"/admin/editions/{edition}/progress"
    # Started elsewhere (a terminal, the scheduler): the edition is sending.
    prepare_send(web.settings, web.database, edition, now=web.clock())
    page = staff.get(progress).text
    assert "http-equiv" not in page  # axe: meta-refresh (critical)
    assert "Bezig met versturen: 0 van 3" in page
    assert re.search(rf'<a [^>]*href="{progress}"[^>]*>Ververs</a>', page)

    send_edition(web.settings, web.database, edition, clock=web.clock)
    page = staff.get(progress).text
    assert "Klaar: 2 verstuurd, 1 mislukt." in page
    assert ">Ververs<" not in page and "http-equiv" not in page
