"""The per-client limit on sign-up requests: the limiter itself, and through the app."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.web.ratelimit import SlidingWindowLimiter, Verdict
from tests.support.clock import FixedClock
from tests.support.webharness import WebHarness, csrf_token, web_harness

LIMIT = 3
WINDOW_MINUTES = 10
_numbers = itertools.count()


# -- the limiter -------------------------------------------------------------------------


def test_the_limit_holds_within_the_window(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=2, window=timedelta(minutes=10), clock=clock)
    assert limiter.hit("a").allowed
    clock.advance(minutes=4)
    assert limiter.hit("a").allowed
    clock.advance(minutes=1)
    assert limiter.hit("a") == Verdict(allowed=False, retry_after=5 * 60)
    assert limiter.hit("b").allowed  # another client counts on its own


def test_the_window_slides_one_request_at_a_time(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=2, window=timedelta(minutes=10), clock=clock)
    limiter.hit("a")
    clock.advance(minutes=4)
    limiter.hit("a")
    clock.advance(minutes=6)  # the first request leaves the window
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed
    clock.advance(minutes=4)  # the second leaves it
    assert limiter.hit("a").allowed


def test_refused_requests_do_not_count(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=1, window=timedelta(minutes=10), clock=clock)
    limiter.hit("a")
    for _ in range(5):
        clock.advance(minutes=1)
        assert not limiter.hit("a").allowed
    clock.advance(minutes=5)
    assert limiter.hit("a").allowed


def test_retry_after_is_whole_seconds_and_at_least_one(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=1, window=timedelta(seconds=10), clock=clock)
    limiter.hit("a")
    clock.advance(seconds=9, microseconds=600_000)
    assert limiter.hit("a") == Verdict(allowed=False, retry_after=1)


def test_idle_and_excess_clients_are_forgotten(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=1, window=timedelta(minutes=1), clock=clock, max_clients=3)
    for key in "abcde":
        limiter.hit(key)
    assert limiter.clients() == 3
    assert limiter.hit("e") == Verdict(allowed=False, retry_after=60)
    clock.advance(minutes=2)
    limiter.hit("z")
    assert limiter.clients() == 1


@pytest.mark.parametrize("options", [{"limit": 0}, {"window": timedelta(0)}, {"max_clients": 0}])
def test_nonsense_limits_are_refused(clock: FixedClock, options: dict[str, object]) -> None:
    arguments: dict[str, object] = {"limit": 1, "window": timedelta(minutes=1), **options}
    with pytest.raises(ValueError, match="must be positive"):
        SlidingWindowLimiter(clock=clock, **arguments)  # type: ignore[arg-type]


# -- through the app ---------------------------------------------------------------------


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    limits = {"signup_limit_per_ip": LIMIT, "signup_window_minutes": WINDOW_MINUTES}
    with web_harness(make_settings, clock, web=limits) as harness:
        yield harness


def post_signups(
    web: WebHarness, count: int, *, ip: str = "203.0.113.1", **headers: str
) -> list[Any]:
    """`count` sign-ups of new addresses from one browser at `ip`."""
    client = web.client(ip=ip, headers=headers)
    token = csrf_token(client.get("/subscribe").text)
    return [
        client.post(
            "/subscribe",
            data={"csrf_token": token, "email": f"lezer{next(_numbers)}@example.org"},
        )
        for _ in range(count)
    ]


def test_past_the_limit_the_form_gets_a_dutch_429(web: WebHarness) -> None:
    responses = post_signups(web, LIMIT + 1)
    assert [r.status_code for r in responses] == [200] * LIMIT + [429]
    refused = responses[-1]
    assert refused.headers["retry-after"] == str(WINDOW_MINUTES * 60)
    assert "Even wachten, alsjeblieft" in refused.text
    assert '<html lang="nl">' in refused.text
    assert len(web.snapshot()["subscribers"]) == LIMIT
    assert len(web.smtp.received) == LIMIT


def test_the_api_shares_the_limit_and_answers_in_json(web: WebHarness) -> None:
    post_signups(web, LIMIT - 1)
    client = web.client(ip="203.0.113.1")
    assert client.post("/api/subscribe", json={"email": "a@example.org"}).status_code == 202
    refused = client.post("/api/subscribe", json={"email": "b@example.org"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert int(refused.headers["retry-after"]) == WINDOW_MINUTES * 60


def test_the_window_slides_with_the_clock(web: WebHarness) -> None:
    post_signups(web, LIMIT)
    web.clock.advance(minutes=WINDOW_MINUTES - 1)
    [refused] = post_signups(web, 1)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    web.clock.advance(minutes=1)
    assert [r.status_code for r in post_signups(web, LIMIT + 1)] == [200] * LIMIT + [429]


def test_each_client_address_has_its_own_limit(web: WebHarness) -> None:
    post_signups(web, LIMIT, ip="203.0.113.1")
    assert post_signups(web, 1, ip="203.0.113.2")[0].status_code == 200
    # One IPv6 customer has a whole /64: it counts as one client.
    post_signups(web, LIMIT, ip="2001:db8:1:2::1")
    assert post_signups(web, 1, ip="2001:db8:1:2::ffff")[0].status_code == 429
    assert post_signups(web, 1, ip="2001:db8:1:3::1")[0].status_code == 200


def test_a_forged_forwarded_for_does_not_escape_the_limit(web: WebHarness) -> None:
    responses = [
        post_signups(web, 1, **{"X-Forwarded-For": f"10.0.0.{n}"})[0] for n in range(LIMIT + 1)
    ]
    assert responses[-1].status_code == 429


def test_other_pages_are_not_limited(web: WebHarness) -> None:
    post_signups(web, LIMIT + 1)
    client = web.client(ip="203.0.113.1")
    assert client.get("/subscribe").status_code == 200
    view = web.confirmed("lezer@example.org")
    assert client.get(view.preferences_url).status_code == 200
    assert client.post(view.unsubscribe_url).status_code == 200


def test_address_changes_count_as_sign_ups(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    client = web.client(ip="203.0.113.9")
    token = csrf_token(client.get(view.preferences_url).text)
    statuses = []
    for n in range(LIMIT + 1):
        response = client.post(
            view.preferences_url,
            data={"csrf_token": token, "action": "change_email", "new_email": f"n{n}@example.org"},
        )
        statuses.append(response.status_code)
    assert statuses == [200] * LIMIT + [429]
    # Saving name and themes is not a sign-up.
    saved = client.post(view.preferences_url, data={"csrf_token": token, "action": "save"})
    assert saved.status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_client_counts(
    make_settings: Callable[..., Settings], clock: FixedClock
) -> None:
    web_settings = {
        "signup_limit_per_ip": LIMIT,
        "signup_window_minutes": WINDOW_MINUTES,
        "trusted_proxies": ["10.0.0.0/8"],
    }
    with web_harness(make_settings, clock, web=web_settings) as web:
        # Two people behind the same proxy each get their own limit ...
        first = post_signups(web, LIMIT + 1, ip="10.0.0.2", **{"X-Forwarded-For": "198.51.100.1"})
        second = post_signups(web, 1, ip="10.0.0.2", **{"X-Forwarded-For": "198.51.100.2"})
        assert first[-1].status_code == 429
        assert second[0].status_code == 200
        # ... and what a client writes in front of the proxy's entry is ignored.
        spoofed = post_signups(
            web, 1, ip="10.0.0.2", **{"X-Forwarded-For": "192.0.2.77, 198.51.100.1"}
        )
        assert spoofed[0].status_code == 429


# -- only accepted sign-ups count (a shared address: a library, a school, an action day) --


def test_mistyped_addresses_do_not_use_up_the_limit(web: WebHarness) -> None:
    client = web.client(ip="203.0.113.5")
    token = csrf_token(client.get("/subscribe").text)
    for typo in ["ouder@", "ouder example.org", "", "ouder@@example.org"] * LIMIT:
        response = client.post("/subscribe", data={"csrf_token": token, "email": typo})
        assert response.status_code == 400
    assert [r.status_code for r in post_signups(web, LIMIT, ip="203.0.113.5")] == [200] * LIMIT


def test_forms_refused_by_the_csrf_check_do_not_count(web: WebHarness) -> None:
    # Another website posting a visitor's browser at our form cannot use up their budget.
    client = web.client(ip="203.0.113.6")
    for n in range(LIMIT * 2):
        refused = client.post("/subscribe", data={"email": f"x{n}@example.org"})
        assert refused.status_code == 403
    assert [r.status_code for r in post_signups(web, LIMIT, ip="203.0.113.6")] == [200] * LIMIT
    assert web.snapshot()["subscribers"] and len(web.smtp.received) == LIMIT


def test_the_limit_page_keeps_what_was_typed(web: WebHarness) -> None:
    post_signups(web, LIMIT, ip="203.0.113.7")
    client = web.client(ip="203.0.113.7")
    token = csrf_token(client.get("/subscribe").text)
    refused = client.post(
        "/subscribe",
        data={
            "csrf_token": token,
            "email": "sanne@example.org",
            "name": "Sanne",
            "themes": ["doe-je-mee"],
        },
    )
    assert refused.status_code == 429
    assert "Even wachten, alsjeblieft" in refused.text
    assert 'value="sanne@example.org"' in refused.text
    assert 'value="Sanne"' in refused.text
    assert 'value="doe-je-mee" checked' in refused.text
    assert f"Probeer het over {WINDOW_MINUTES} minuten opnieuw" in refused.text
    # The form on it works again once the wait is over.
    web.clock.advance(minutes=WINDOW_MINUTES)
    again = client.post(
        "/subscribe", data={"csrf_token": csrf_token(refused.text), "email": "sanne@example.org"}
    )
    assert again.status_code == 200 and "Kijk in je mailbox" in again.text


def test_the_default_budget_suits_an_action_day(make_settings: Callable[..., Settings]) -> None:
    # One sign-up a minute from one laptop for an hour: 60 people at a stand.
    assert make_settings().web.signup_limit_per_ip == 60


def test_release_gives_back_the_latest_counted_request(clock: FixedClock) -> None:
    limiter = SlidingWindowLimiter(limit=1, window=timedelta(minutes=10), clock=clock)
    assert limiter.hit("a").allowed
    limiter.release("a")
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed
    limiter.release("nobody")  # nothing counted: nothing to give back
