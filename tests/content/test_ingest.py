"""Ingest: feeds over a real local HTTP server into the database, one feed at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.content.fetching import make_http_client
from newsletter.content.ingest import FeedReport, fetch_all, ingest_feeds
from newsletter.content.models import Article, Feed
from newsletter.core.config import Settings
from newsletter.core.db import Database
from tests.support.clock import FixedClock
from tests.support.httpserver import LocalHTTPServer, Request, Response
from tests.support.tls import TestCa
from tests.support.waiting import PATIENCE_SECONDS

RSS = "application/rss+xml; charset=utf-8"
SEED_TITLES = {
    "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg",
    "Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!",
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_http_client(timeout=PATIENCE_SECONDS, user_agent="test") as http:
        yield http


def ingest(db: Database, client: httpx.Client, clock: FixedClock, *urls: str) -> list[FeedReport]:
    return ingest_feeds(
        db, list(urls), client=client, clock=clock, max_bytes=1_000_000, timeout=PATIENCE_SECONDS
    )


def count_articles(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Article)) or 0


def test_sample_feed_is_stored_with_its_details(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    url = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    [report] = ingest(db, client, clock, url)
    assert (report.outcome, report.new, report.updated, report.error) == ("stored", 5, 0, None)
    with db.session() as session:
        stored = session.scalars(select(Article)).all()
        assert {article.title for article in stored} >= SEED_TITLES
        research = next(a for a in stored if a.title.startswith("Nieuw onderzoek"))
        assert "jeugdbescherming" in research.categories
        assert "Doe je mee?" in research.categories
        assert research.published_at is not None and research.published_at.tzinfo is not None
        assert (research.published_at.year, research.published_at.month) == (2022, 9)
        assert research.first_seen_at == clock()
        assert "cliëntenraad" in research.content_html


def test_unchanged_feed_answers_304_and_stores_nothing(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    def conditional(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(304)
        return Response(200, sample_feed_bytes, {"Content-Type": RSS, "ETag": '"v1"'})

    url = http_server.serve("/feed/", conditional)
    ingest(db, client, clock, url)
    [report] = ingest(db, client, clock.later(hours=1), url)
    assert report.outcome == "unchanged"
    assert http_server.requests[-1].headers.get("if-none-match") == '"v1"'
    assert count_articles(db) == 5


def test_edited_article_updates_its_row_and_keeps_first_seen(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    url = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    ingest(db, client, clock, url)
    first_seen = clock()
    edited = sample_feed_bytes.replace(
        b"Eerste opbrengsten verkenning", b"Eerste opbrengsten (bijgewerkt) verkenning"
    )
    http_server.serve("/feed/", Response(200, edited, {"Content-Type": RSS}))
    [report] = ingest(db, client, clock.later(days=2), url)
    assert (report.new, report.updated) == (0, 1)
    assert count_articles(db) == 5
    with db.session() as session:
        article = session.scalars(select(Article).where(Article.title.like("%(bijgewerkt)%"))).one()
        assert article.first_seen_at == first_seen
        assert article.last_seen_at == clock()


def test_a_failing_feed_does_not_stop_the_others(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    broken = http_server.serve("/broken/", Response(500, b"oops"))
    good = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    reports = ingest(db, client, clock, broken, good)
    assert [report.outcome for report in reports] == ["failed", "stored"]
    assert reports[0].error is not None and "500" in reports[0].error
    assert count_articles(db) == 5
    with db.session() as session:
        feed = session.scalars(select(Feed).where(Feed.url == broken)).one()
        assert feed.last_error == reports[0].error


def test_a_failure_later_keeps_what_was_stored_and_the_validators(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    url = http_server.serve(
        "/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS, "ETag": '"v1"'})
    )
    ingest(db, client, clock, url)
    http_server.serve("/feed/", Response(200, b"<html><body>Onderhoud</body></html>"))
    [report] = ingest(db, client, clock.later(hours=1), url)
    assert report.failed
    assert count_articles(db) == 5
    with db.session() as session:
        assert session.scalars(select(Feed.etag)).one() == '"v1"'


def test_validators_of_an_unreadable_body_are_not_kept(
    db: Database,
    client: httpx.Client,
    clock: FixedClock,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    # Keeping the ETag of a body we could not read would make the next fetch a 304 and
    # hide its articles for good.
    http_server.serve("/feed/", Response(200, b"\x00garbage", {"ETag": '"bad"'}))
    url = http_server.url("/feed/")
    [report] = ingest(db, client, clock, url)
    assert report.failed
    http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    [report] = ingest(db, client, clock.later(hours=1), url)
    assert "if-none-match" not in http_server.requests[-1].headers
    assert report.new == 5


def test_same_guid_twice_in_one_feed_is_stored_once(
    db: Database, client: httpx.Client, clock: FixedClock, http_server: LocalHTTPServer
) -> None:
    item = (
        "<item><title>{title}</title><link>https://www.rvjeugdzorg.nl/a</link>"
        "<guid>https://www.rvjeugdzorg.nl/?p=1</guid><description>x</description></item>"
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        + item.format(title="Eerste")
        + item.format(title="Tweede")
        + "</channel></rss>"
    ).encode()
    url = http_server.serve("/feed/", Response(200, body, {"Content-Type": RSS}))
    [report] = ingest(db, client, clock, url)
    assert report.new == 1
    with db.session() as session:
        assert session.scalars(select(Article.title)).all() == ["Eerste"]


@pytest.mark.parametrize("with_ca_file", [True, False], ids=["ca_file", "public CAs only"])
def test_a_feed_over_https_from_the_organisations_own_ca(
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    test_ca: TestCa,
    sample_feed_bytes: bytes,
    with_ca_file: bool,
) -> None:
    # A feed behind a certificate of the organisation's own CA is fetched when [tls]
    # ca_file names that CA; without it the certificate is refused, and the feed fails.
    server = LocalHTTPServer(
        tls_context=test_ca.server_context("feeds.rvjeugdzorg.test", address="127.0.0.1")
    ).start()
    try:
        url = server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
        tls = {"ca_file": str(test_ca.cert)} if with_ca_file else {}
        settings = make_settings(feed={"urls": [url], "timeout_seconds": PATIENCE_SECONDS}, tls=tls)
        [report] = fetch_all(settings, db, clock=clock)
    finally:
        server.stop()
    if with_ca_file:
        assert (report.outcome, report.new) == ("stored", 5)
    else:
        assert report.outcome == "failed" and "certificate" in (report.error or "").lower()
