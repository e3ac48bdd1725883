"""The public archive through the real app: the list, each web version, the Atom feed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import html as lxml_html  # type: ignore[import-untyped,unused-ignore]

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.archive import PAGE_SIZE
from newsletter.editions.compose import compose_edition, sample_recipient, web_version_url
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.preview import edition_content
from newsletter.web.security import CONTENT_SECURITY_POLICY, mail_document_policy
from tests.support.archive import ATOM, NOT_PUBLIC, SITE, add_edition
from tests.support.clock import FixedClock
from tests.support.webharness import BASE_URL, WebHarness, web_harness

FEED_LINK = '<link rel="alternate" type="application/atom+xml"'


def edition(web: WebHarness, state: str, **options: Any) -> int:
    return add_edition(web.database, web.clock, state, **options)


def assert_public(response: Any, *, max_age: int) -> None:
    """Headers of an archive answer: kept for a while by anyone, and never a cookie."""
    assert response.headers["cache-control"] == f"public, max-age={max_age}"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    assert "set-cookie" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers


def assert_not_found(response: Any) -> None:
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Deze pagina bestaat niet" in response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"


# -- the list ----------------------------------------------------------------------------


def test_the_archive_lists_the_editions_that_went_out(web: WebHarness) -> None:
    sent = edition(web, "sent", subject="Nieuws over de actiedagen & meer")
    sending = edition(web, "sending", subject="Het nieuws van deze week")
    for state in NOT_PUBLIC:
        edition(web, state, subject=f"Geheim: {state}")
    response = web.client().get("/archive")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert_public(response, max_age=300)

    page = lxml_html.document_fromstring(response.text)
    assert page.get("lang") == "nl"
    assert page.findtext(".//h1") == "Alle nieuwsbrieven"
    items = [" ".join(item.text_content().split()) for item in page.findall(".//ol/li")]
    assert items == [
        f"Het nieuws van deze week Nieuwsbrief {sending} · verstuurd op 17 november 2026",
        f"Nieuws over de actiedagen & meer Nieuwsbrief {sent} · verstuurd op 17 november 2026",
    ]
    assert [a.get("href") for a in page.findall(".//ol/li/a")] == [
        f"/archive/{sending}",
        f"/archive/{sent}",
    ]
    assert "Geheim" not in response.text
    assert "<script" not in response.text


def test_the_archive_page_points_feed_readers_to_the_feed(web: WebHarness) -> None:
    page = lxml_html.document_fromstring(web.client().get("/archive").text)
    [link] = page.head.findall("link[@type='application/atom+xml']")
    assert link.get("rel") == "alternate"
    assert link.get("href") == "/archive/feed.xml"
    assert page.find(".//meta[@name='robots']").get("content") == "index, follow"
    # Only the archive has it: the other pages' heads are as they were.
    assert FEED_LINK not in web.client().get("/subscribe").text


def test_an_empty_archive_says_nothing_went_out_yet(web: WebHarness) -> None:
    edition(web, "draft")
    response = web.client().get("/archive")
    assert response.status_code == 200
    assert "Er is nog geen nieuwsbrief verstuurd." in response.text
    assert "<ol" not in response.text
    assert 'href="/subscribe"' in response.text


def test_a_long_archive_comes_in_pages(web: WebHarness) -> None:
    numbers = [edition(web, "sent", titles=("Een",)) for _ in range(PAGE_SIZE + 1)]
    client = web.client()
    first = lxml_html.document_fromstring(client.get("/archive").text)
    assert len(first.findall(".//ol/li")) == PAGE_SIZE
    assert first.find(".//a[@rel='next']").get("href") == "/archive?page=2"
    assert first.find(".//a[@rel='prev']") is None
    response = client.get("/archive?page=2")
    assert response.status_code == 200
    second = lxml_html.document_fromstring(response.text)
    assert [a.get("href") for a in second.findall(".//ol/li/a")] == [f"/archive/{numbers[0]}"]
    assert second.find(".//a[@rel='prev']").get("href") == "/archive"
    assert "Pagina 2 van 2" in response.text
    assert_not_found(client.get("/archive?page=3"))


@pytest.mark.parametrize("page", ["0", "-1", "01", "abc", "1.5", "", "9999999"])
def test_a_page_that_does_not_exist_is_not_found(web: WebHarness, page: str) -> None:
    edition(web, "sent")
    assert_not_found(web.client().get("/archive", params={"page": page}))


# -- one edition -------------------------------------------------------------------------


def test_an_edition_that_went_out_is_shown_without_anything_personal(web: WebHarness) -> None:
    web.confirmed("lezer@example.org", name="Sanne")
    number = edition(web, "sent", titles=("Ouders aan het woord", "Actiedag in Utrecht"))
    response = web.client().get(f"/archive/{number}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert_public(response, max_age=3600)
    document = response.text
    visible = " ".join(lxml_html.document_fromstring(document).text_content().split())
    assert "Ouders aan het woord" in visible and "Actiedag in Utrecht" in visible
    assert "Beste lezer," in visible
    for personal in ("Sanne", "lezer@example.org", "/unsubscribe/", "/preferences/", "slot-"):
        assert personal not in document
    assert f'href="{BASE_URL}/subscribe"' in document
    assert f'href="{BASE_URL}/archive"' in document


def test_an_edition_being_sent_is_shown_already(web: WebHarness) -> None:
    number = edition(web, "sending")
    assert web.client().get(f"/archive/{number}").status_code == 200


def test_the_policy_allows_exactly_the_images_of_the_edition(web: WebHarness) -> None:
    pictured = edition(web, "sent", image_url=f"{SITE}/wp-content/uploads/foto.jpg")
    plain = edition(web, "sent")
    client = web.client()
    response = client.get(f"/archive/{pictured}")
    expected = mail_document_policy([SITE], framed_by_self=False)
    assert response.headers["content-security-policy"] == expected["Content-Security-Policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "img-src https://www.rvjeugdzorg.nl;" in response.headers["content-security-policy"]
    assert f'src="{SITE}/wp-content/uploads/foto.jpg"' in response.text
    response = client.get(f"/archive/{plain}")
    expected = mail_document_policy([], framed_by_self=False)
    assert response.headers["content-security-policy"] == expected["Content-Security-Policy"]
    assert "img-src 'none';" in response.headers["content-security-policy"]
    assert "<img" not in response.text


def test_a_tracking_image_from_the_feed_is_neither_shown_nor_allowed(web: WebHarness) -> None:
    number = edition(web, "sent", image_url="http://tracker.example/pixel.gif?edition=1")
    response = web.client().get(f"/archive/{number}")
    assert "tracker.example" not in response.text
    assert "<img" not in response.text
    assert "img-src 'none';" in response.headers["content-security-policy"]


def test_the_policy_names_only_the_image_hosts_of_the_settings(
    make_settings: Callable[..., Settings], clock: FixedClock, tmp_path: Path
) -> None:
    # A template of the staff's own that shows an image from elsewhere: the mail would
    # carry it, but the page's policy does not let a browser load it.
    header = tmp_path / "eigen" / "email" / "_header.mjml.j2"
    header.parent.mkdir(parents=True)
    header.write_text(
        '<mj-section><mj-column><mj-image src="https://tracker.example/t.gif" alt="" />'
        '<mj-image src="https://media.rvjeugdzorg.nl/logo.png" alt="" />'
        "</mj-column></mj-section>\n",
        encoding="utf-8",
    )
    with web_harness(
        make_settings,
        clock,
        site={"image_hosts": ["media.rvjeugdzorg.nl"]},
        templates={"dir": "eigen"},
    ) as web:
        number = edition(web, "sent", image_url=f"{SITE}/wp-content/uploads/foto.jpg")
        response = web.client().get(f"/archive/{number}")
    assert "https://tracker.example/t.gif" in response.text
    policy = response.headers["content-security-policy"]
    assert "img-src https://media.rvjeugdzorg.nl https://www.rvjeugdzorg.nl;" in policy


def test_the_link_in_the_mail_leads_to_the_web_version(web: WebHarness) -> None:
    number = edition(web, "sent")
    with web.database.session() as session:
        content = edition_content(get_edition(session, number))
    mail = compose_edition(content, web.settings, environment=template_environment(web.settings))
    assert mail is not None
    html_mail = lxml_html.document_fromstring(mail.html_for(sample_recipient(web.settings)))
    [link] = [a.get("href") for a in html_mail.iter("a") if a.text == "Bekijk in je browser"]
    assert link == web_version_url(web.settings, number)
    response = web.client().get(link)
    assert response.status_code == 200
    assert content.subject in response.text


@pytest.mark.parametrize("state", NOT_PUBLIC)
def test_an_edition_that_did_not_go_out_is_not_found(web: WebHarness, state: str) -> None:
    number = edition(web, state, subject="Nog geheim")
    response = web.client().get(f"/archive/{number}")
    assert_not_found(response)
    assert "Nog geheim" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/archive/999",
        "/archive/0",
        "/archive/01",
        "/archive/-1",
        "/archive/1.0",
        "/archive/abc",
        "/archive/%C2%B2",
        "/archive/99999999999999999999",
        "/archive/feed",
        "/archive/1/x",
    ],
)
def test_anything_else_under_archive_is_not_found(web: WebHarness, path: str) -> None:
    edition(web, "sent")
    assert_not_found(web.client().get(path))


def test_an_unchanged_page_is_answered_with_not_modified(web: WebHarness) -> None:
    number = edition(web, "sent")
    client = web.client()
    for path in ("/archive", f"/archive/{number}", "/archive/feed.xml"):
        first = client.get(path)
        again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["etag"] == first.headers["etag"]
        other = client.get(path, headers={"If-None-Match": '"iets-anders"'})
        assert other.status_code == 200


def test_the_archive_is_read_only(web: WebHarness) -> None:
    number = edition(web, "sent")
    client = web.client()
    for path in ("/archive", f"/archive/{number}", "/archive/feed.xml"):
        assert client.post(path).status_code == 405


# -- the feed ----------------------------------------------------------------------------


def test_the_feed_is_atom(web: WebHarness) -> None:
    sent = edition(web, "sent", subject='Nieuws & "meer" <vandaag>', titles=("Ouders & jongeren",))
    edition(web, "sending")
    response = web.client().get("/archive/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert_public(response, max_age=900)
    root = ET.fromstring(response.content)
    [entry] = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == 'Nieuws & "meer" <vandaag>'
    assert entry.findtext(f"{ATOM}id") == f"{BASE_URL}/archive/{sent}"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.links[0].href == f"{BASE_URL}/archive/feed.xml"
    assert parsed.entries[0].link == f"{BASE_URL}/archive/{sent}"
    assert "Ouders &amp; jongeren" in parsed.entries[0].summary
