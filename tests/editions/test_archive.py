"""The public archive: which editions it shows, their web versions, and the Atom feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import feedparser
import jinja2
import pytest
from lxml import html as lxml_html  # type: ignore[import-untyped,unused-ignore]

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import CompositionError
from newsletter.core.templating import template_environment
from newsletter.editions.archive import (
    FEED_SIZE,
    WebVersions,
    archive_page,
    feed_entries,
    image_origins,
    parse_edition_number,
    render_feed,
    rfc3339,
)
from newsletter.editions.compose import compose_web_version
from newsletter.editions.lifecycle import move_edition
from newsletter.editions.models import Edition
from tests.support.archive import ATOM, MOVES, NOT_PUBLIC, SITE, add_edition
from tests.support.clock import FixedClock
from tests.support.sample_edition import mail_settings, seed_edition

XHTML = "{http://www.w3.org/1999/xhtml}"


def move(database: Database, clock: FixedClock, number: int, state: str) -> None:
    with database.session() as session:
        edition = session.get(Edition, number)
        assert edition is not None
        move_edition(edition, state, now=clock.advance(minutes=5))


def sent_at(database: Database, number: int) -> str:
    with database.session() as session:
        edition = session.get(Edition, number)
        assert edition is not None and edition.sent_at is not None
        return rfc3339(edition.sent_at)


@pytest.fixture
def environment(settings: Settings) -> jinja2.Environment:
    return template_environment(settings)


# -- the list ----------------------------------------------------------------------------


def test_the_archive_lists_only_editions_that_went_out_newest_first(
    db: Database, clock: FixedClock
) -> None:
    numbers = {state: add_edition(db, clock, state) for state in MOVES}
    with db.session() as session:
        page = archive_page(session, page=1)
    assert page is not None
    # Numbered in the order drafted: "sent" came after "sending".
    assert [edition.number for edition in page.editions] == [numbers["sent"], numbers["sending"]]
    assert [edition.subject for edition in page.editions] == [
        f"Nieuwsbrief {numbers['sent']}",
        f"Nieuwsbrief {numbers['sending']}",
    ]
    assert (page.number, page.page_count, page.previous, page.next) == (1, 1, None, None)


def test_an_edition_is_dated_by_its_send(db: Database, clock: FixedClock) -> None:
    sent = add_edition(db, clock, "sent")
    finished = clock()
    clock.advance(days=2)
    sending = add_edition(db, clock, "sending")
    started = clock()
    clock.advance(hours=1)
    with db.session() as session:
        page = archive_page(session, page=1)
    assert page is not None
    assert {edition.number: edition.sent_at for edition in page.editions} == {
        sent: finished,
        sending: started,
    }


def test_an_empty_archive_has_one_empty_page(db: Database, clock: FixedClock) -> None:
    add_edition(db, clock, "draft")
    with db.session() as session:
        page = archive_page(session, page=1)
        assert page is not None
        assert page.editions == ()
        assert page.page_count == 1
        assert archive_page(session, page=2) is None
        assert archive_page(session, page=0) is None


def test_the_archive_comes_in_pages(db: Database, clock: FixedClock) -> None:
    numbers = [add_edition(db, clock, "sent", titles=("Een",)) for _ in range(5)]
    with db.session() as session:
        pages = [archive_page(session, page=n, page_size=2) for n in (1, 2, 3, 4)]
    first, second, third, beyond = pages
    assert first is not None and second is not None and third is not None
    assert beyond is None
    shown = [edition.number for page in (first, second, third) for edition in page.editions]
    assert shown == sorted(numbers, reverse=True)
    assert (first.previous, first.next, first.page_count) == (None, 2, 3)
    assert (second.previous, second.next) == (1, 3)
    assert (third.previous, third.next) == (2, None)


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("1", 1),
        ("12", 12),
        ("999999999", 999_999_999),
        ("0", None),
        ("012", None),
        ("-1", None),
        ("1.0", None),
        ("1e3", None),
        (" 1", None),
        ("", None),
        ("²", None),
        ("١٢", None),
        ("1234567890", None),
        ("feed.xml", None),
    ],
)
def test_edition_numbers_are_plain_digits(value: str, number: int | None) -> None:
    assert parse_edition_number(value) == number


# -- the web version ---------------------------------------------------------------------


def test_the_web_version_shows_every_article_and_nothing_of_a_reader(tmp_path: Path) -> None:
    settings = mail_settings(tmp_path)
    content = seed_edition()
    document = compose_web_version(content, settings, environment=template_environment(settings))
    tree = lxml_html.document_fromstring(document)
    visible = " ".join(tree.text_content().split())
    for article in content.articles:
        assert article.title in visible
    assert "Beste lezer," in visible
    for personal in (
        "/unsubscribe/",
        "/preferences/",
        "voorbeeld",
        "slot-",
        "Afmelden",
        "Voorkeuren aanpassen",
        "Bekijk in je browser",
        "Je ontvangt deze nieuwsbrief omdat",
    ):
        assert personal not in document, personal
    links = {anchor.text_content(): anchor.get("href") for anchor in tree.iter("a")}
    base_url = settings.site.base_url
    assert links["Aanmelden voor de nieuwsbrief"] == f"{base_url}/subscribe"
    assert links["Alle nieuwsbrieven"] == f"{base_url}/archive"
    allowed = {article.link for article in content.articles} | {
        settings.site.website_url,
        settings.site.join_url,
        f"{base_url}/subscribe",
        f"{base_url}/archive",
    }
    for href in links.values():
        assert href in allowed or href.startswith(("mailto:", "tel:")), href


def test_the_web_version_refuses_a_template_that_shows_a_reader(tmp_path: Path) -> None:
    folder = tmp_path / "eigen-templates" / "email"
    folder.mkdir(parents=True)
    # A footer from before the web version existed: it always shows the reader's links.
    (folder / "_footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>"
        '<p>Aangemeld met {{ recipient.email }}. <a href="{{ recipient.unsubscribe_url }}">'
        "Afmelden</a></p></mj-text></mj-column></mj-section>\n",
        encoding="utf-8",
    )
    settings = mail_settings(tmp_path, templates={"dir": "eigen-templates"})
    with pytest.raises(CompositionError, match=r"may not show recipient\.email"):
        compose_web_version(seed_edition(), settings, environment=template_environment(settings))


def test_a_public_edition_has_a_web_version_of_all_its_articles(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    # Articles of different themes: the web version is the mail for a reader of them all.
    first = add_edition(db, clock, "sent", titles=("Een kampvuur",), categories=("Kampvuur",))
    number = add_edition(db, clock, "sending", titles=("Over ouders", "Over jongeren"))
    versions = WebVersions(settings, db, environment=environment)
    version = versions.get(number)
    assert version is not None
    assert version.number == number
    assert "Over ouders" in version.html and "Over jongeren" in version.html
    assert "Een kampvuur" not in version.html
    assert "Beste lezer," in version.html
    assert "/unsubscribe/" not in version.html
    other = versions.get(first)
    assert other is not None and "Een kampvuur" in other.html


@pytest.mark.parametrize("state", NOT_PUBLIC)
def test_an_edition_that_did_not_go_out_has_no_web_version(
    db: Database,
    clock: FixedClock,
    settings: Settings,
    environment: jinja2.Environment,
    state: str,
) -> None:
    number = add_edition(db, clock, state)
    versions = WebVersions(settings, db, environment=environment)
    assert versions.get(number) is None
    assert versions.get(number + 1) is None


def test_web_versions_are_kept_until_the_edition_changes(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    number = add_edition(db, clock, "sending")
    versions = WebVersions(settings, db, environment=environment)
    first = versions.get(number)
    assert first is not None
    assert versions.get(number) is first  # the kept rendering, not a new one
    move(db, clock, number, "sent")
    again = versions.get(number)
    assert again is not None and again is not first
    assert again.html == first.html
    assert versions.get(number) is again


def test_only_a_few_web_versions_are_kept(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    numbers = [add_edition(db, clock, "sent", titles=("Een",)) for _ in range(3)]
    versions = WebVersions(settings, db, environment=environment, max_entries=2)
    rendered = {number: versions.get(number) for number in numbers}
    # The oldest use left when the third came in; the two latest are still kept.
    assert versions.get(numbers[2]) is rendered[numbers[2]]
    assert versions.get(numbers[1]) is rendered[numbers[1]]
    assert versions.get(numbers[0]) is not rendered[numbers[0]]


def test_the_web_version_names_the_origins_of_its_images(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    with_image = add_edition(db, clock, "sent", image_url=f"{SITE}/wp-content/uploads/foto.jpg")
    without = add_edition(db, clock, "sent")
    versions = WebVersions(settings, db, environment=environment)
    pictured = versions.get(with_image)
    plain = versions.get(without)
    assert pictured is not None and plain is not None
    assert f'src="{SITE}/wp-content/uploads/foto.jpg"' in pictured.html
    assert pictured.image_origins == (SITE,)
    assert plain.image_origins == ()


def test_image_origins_are_scheme_host_and_port_only() -> None:
    document = (
        '<img src="https://www.rvjeugdzorg.nl/a.jpg"><img src="HTTPS://WWW.rvjeugdzorg.nl/b.png">'
        '<img src="http://beeld.example:8080/c.jpg?x=1"><img src="data:image/png;base64,AAAA">'
        '<img src="/lokaal.png"><img src="https://iemand:geheim@foto.example/d.jpg">'
        '<img srcset="https://groot.example/e.jpg 2x, https://klein.example/f.jpg 1x">'
        '<td background="https://achtergrond.example/g.jpg"></td>'
        '<a href="https://link.example/">geen beeld</a>'
    )
    assert image_origins(document) == (
        "http://beeld.example:8080",
        "https://achtergrond.example",
        "https://foto.example",
        "https://groot.example",
        "https://klein.example",
        "https://www.rvjeugdzorg.nl",
    )


# -- the Atom feed -----------------------------------------------------------------------


def feed_for(
    db: Database, settings: Settings, environment: jinja2.Environment, clock: FixedClock
) -> str:
    with db.session() as session:
        entries = feed_entries(session, settings)
    return render_feed(entries, settings, environment=environment, now=clock())


def test_the_feed_is_atom_with_the_sent_editions(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    older = add_edition(db, clock, "sent", titles=("Ouders aan het woord", "Actiedag"))
    newer = add_edition(db, clock, "sent", titles=("Jongerenraad",))
    for state in ("sending", *NOT_PUBLIC):
        add_edition(db, clock, state)
    clock.advance(days=1)
    document = feed_for(db, settings, environment, clock)
    assert document.startswith('<?xml version="1.0" encoding="utf-8"?>\n<feed ')

    root = ET.fromstring(document.encode("utf-8"))
    base = settings.site.base_url
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") == f"{base}/archive/feed.xml"
    assert root.findtext(f"{ATOM}title") == "Nieuwsbrief Radicale vernieuwing jeugdzorg"
    assert root.findtext(f"{ATOM}updated") == sent_at(db, newer)
    assert root.findtext(f"{ATOM}author/{ATOM}name") == settings.site.name
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {"self": f"{base}/archive/feed.xml", "alternate": f"{base}/archive"}
    entries = root.findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}id") for entry in entries] == [
        f"{base}/archive/{newer}",
        f"{base}/archive/{older}",
    ]
    last = entries[1]
    assert last.findtext(f"{ATOM}title") == f"Nieuwsbrief {older}"
    assert last.findtext(f"{ATOM}updated") == sent_at(db, older)
    assert last.find(f"{ATOM}link[@rel='alternate']").get("href") == f"{base}/archive/{older}"  # type: ignore[union-attr]
    items = last.findall(f"{ATOM}summary/{XHTML}div/{XHTML}ul/{XHTML}li")
    assert [item.text for item in items] == ["Ouders aan het woord", "Actiedag"]

    parsed = feedparser.parse(document)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert [entry.title for entry in parsed.entries] == [
        f"Nieuwsbrief {newer}",
        f"Nieuwsbrief {older}",
    ]
    assert [entry.link for entry in parsed.entries] == [
        f"{base}/archive/{newer}",
        f"{base}/archive/{older}",
    ]
    assert "Ouders aan het woord" in parsed.entries[1].summary
    assert "Actiedag" in parsed.entries[1].summary


def test_feed_entries_never_change_once_sent(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    number = add_edition(db, clock, "sent")
    before = ET.fromstring(feed_for(db, settings, environment, clock)).find(f"{ATOM}entry")
    clock.advance(days=7)
    add_edition(db, clock, "sent")
    entries = ET.fromstring(feed_for(db, settings, environment, clock)).findall(f"{ATOM}entry")
    assert before is not None and len(entries) == 2
    assert ET.tostring(entries[1]) == ET.tostring(before)
    assert before.findtext(f"{ATOM}id") == f"{settings.site.base_url}/archive/{number}"


def test_hostile_subjects_and_titles_come_out_as_valid_xml(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    subject = "Tom & Jerry <b>\"dubbel\" 'enkel'</b> ]]> &amp; \x0b\x1f\ufffe"
    title = '<script>alert("x")</script> & </li></ul>'
    add_edition(db, clock, "sent", subject=subject, titles=(title,))
    document = feed_for(db, settings, environment, clock)
    assert "<script>" not in document and "<b>" not in document

    entry = ET.fromstring(document.encode("utf-8")).find(f"{ATOM}entry")
    assert entry is not None
    expected_subject = "Tom & Jerry <b>\"dubbel\" 'enkel'</b> ]]> &amp;"
    assert entry.findtext(f"{ATOM}title") == expected_subject
    [item] = entry.findall(f"{ATOM}summary/{XHTML}div/{XHTML}ul/{XHTML}li")
    assert item.text == title

    parsed = feedparser.parse(document)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.entries[0].title == expected_subject


def test_the_feed_holds_the_latest_sent_editions(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    numbers = [add_edition(db, clock, "sent", titles=("Een",)) for _ in range(FEED_SIZE + 1)]
    root = ET.fromstring(feed_for(db, settings, environment, clock))
    ids = [entry.findtext(f"{ATOM}id") for entry in root.findall(f"{ATOM}entry")]
    base = settings.site.base_url
    assert ids == [f"{base}/archive/{number}" for number in reversed(numbers[1:])]


def test_an_empty_feed_is_valid_and_dated_now(
    db: Database, clock: FixedClock, settings: Settings, environment: jinja2.Environment
) -> None:
    add_edition(db, clock, "sending")
    document = feed_for(db, settings, environment, clock)
    root = ET.fromstring(document)
    assert root.findall(f"{ATOM}entry") == []
    assert root.findtext(f"{ATOM}updated") == rfc3339(clock())
    assert not feedparser.parse(document).bozo


def test_the_feed_template_escapes_the_site_name(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    settings = make_settings(site={"name": 'Jeugd & "zorg" <samen>'})
    environment = template_environment(settings)
    root = ET.fromstring(feed_for(db, settings, environment, clock))
    assert root.findtext(f"{ATOM}title") == 'Nieuwsbrief Jeugd & "zorg" <samen>'
