"""Parsing feed bytes into entries: formats, sanitizing, dates, and bad input."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.content.entries import MAX_HTML_CHARS, FeedEntry
from newsletter.content.feeds import MAX_ENTRIES, ParsedFeed, parse_feed
from newsletter.core.errors import FeedParseError
from tests.support.paths import DATA_DIR

FEEDS = DATA_DIR / "feeds"
SITE_FEED = "https://www.rvjeugdzorg.nl/feed/"
RSS = "application/rss+xml; charset=UTF-8"


def parse_fixture(name: str, *, url: str = SITE_FEED, content_type: str | None = RSS) -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), url=url, content_type=content_type)


def rss(items: str, *, namespaces: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {namespaces}><channel>'
        f"<title>Test</title><link>https://voorbeeld.nl/</link>{items}</channel></rss>"
    ).encode()


@pytest.fixture(scope="module")
def wordpress() -> ParsedFeed:
    return parse_fixture("wordpress.xml")


# -- RSS 2.0 as WordPress writes it -----------------------------------------------------


def test_wordpress_feed_and_entry_fields(wordpress: ParsedFeed) -> None:
    assert wordpress.title == "Radicale vernieuwing jeugdzorg"
    assert wordpress.link == "https://www.rvjeugdzorg.nl"
    assert wordpress.warnings == ()
    first = wordpress.entries[0]
    assert first.guid == "https://www.rvjeugdzorg.nl/?p=3101"
    assert first.link == "https://www.rvjeugdzorg.nl/nieuws/clientenraad-samen-creeren/"
    assert first.author == "Anna de Vries"
    assert first.summary_html.startswith("Jongeren en ouders vertellen")


def test_dutch_diacritics_and_typographic_quotes_are_carried_intact(
    wordpress: ParsedFeed,
) -> None:
    first = wordpress.entries[0]
    assert first.title == "De cliëntenraad wil ‘samen creëren’ – “niet over ons zonder ons”…"
    assert "wat ‘echte zeggenschap’ voor hen" in first.content_html
    assert "cliëntenraad/jongerenraad" in first.categories


def test_categories_are_stripped_unescaped_and_deduplicated_in_order(
    wordpress: ParsedFeed,
) -> None:
    # "kampvuurgesprekken" repeats "Kampvuurgesprekken"; WordPress writes "&amp;" in CDATA.
    assert wordpress.entries[0].categories == (
        "Kampvuurgesprekken",
        "Opstarten beweging & Kampvuurgesprekken",
        "cliëntenraad/jongerenraad",
    )


def test_pubdate_with_an_offset_becomes_aware_utc(wordpress: ParsedFeed) -> None:
    first, second, third, _ = wordpress.entries
    assert first.published_at == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)  # +0200
    assert second.published_at == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # +0000
    assert third.published_at == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)  # +0100
    assert first.published_at.utcoffset() is not None
    assert first.updated_at is None


def test_content_is_sanitized(wordpress: ParsedFeed) -> None:
    content = wordpress.entries[0].content_html
    for forbidden in ("<script", "document.cookie", "<style", "display: none", "<iframe",
                      "video", "onclick", "onerror", "style=", "javascript:", "data:"):  # fmt: skip
        assert forbidden not in content, forbidden
    assert '<a href="https://www.rvjeugdzorg.nl/manifest/" rel="noopener noreferrer">' in content
    assert '<a href="mailto:rvjeugdzorg@loc.nl" rel="noopener noreferrer">' in content
    assert (
        '<img src="https://www.rvjeugdzorg.nl/wp-content/uploads/kampvuur.jpg" alt="Kampvuur"'
        in content
    )
    assert "<h2>Niet over ons zonder ons</h2>" in content


def test_summary_links_are_resolved_against_the_feed_url(wordpress: ParsedFeed) -> None:
    assert 'href="https://www.rvjeugdzorg.nl/nieuws/zeggenschap/"' in (
        wordpress.entries[0].summary_html
    )


def test_media_content_gives_the_image_and_its_description_the_alt(
    wordpress: ParsedFeed,
) -> None:
    first = wordpress.entries[0]
    assert first.image_url == "https://www.rvjeugdzorg.nl/wp-content/uploads/kampvuur.jpg"
    assert first.image_alt == "Jongeren rond een kampvuur in de avond"


def test_image_enclosure_is_made_absolute(wordpress: ParsedFeed) -> None:
    second = wordpress.entries[1]
    assert second.image_url == "https://www.rvjeugdzorg.nl/wp-content/uploads/actiedag.jpg"
    assert second.image_alt is None


def test_audio_enclosure_is_no_image_but_a_thumbnail_is(wordpress: ParsedFeed) -> None:
    third = wordpress.entries[2]
    assert third.image_url == "https://www.rvjeugdzorg.nl/wp-content/uploads/podcast-thumb.jpg"


def test_javascript_link_and_image_are_dropped(wordpress: ParsedFeed) -> None:
    fourth = wordpress.entries[3]
    assert fourth.title == "Een bericht zonder veilige afbeelding"
    assert fourth.link is None
    assert fourth.image_url is None


def test_guid_falls_back_to_the_link(wordpress: ParsedFeed) -> None:
    assert wordpress.entries[1].guid == "https://www.rvjeugdzorg.nl/bijeenkomsten/actiedag/"


def test_guid_falls_back_to_a_hash_of_title_and_summary() -> None:
    body = rss("<item><title>Zonder id</title><description>Tekst</description></item>")
    first = parse_feed(body, url=SITE_FEED).entries[0]
    again = parse_feed(body, url=SITE_FEED).entries[0]
    other = parse_feed(body.replace(b"Tekst", b"Andere tekst"), url=SITE_FEED).entries[0]
    assert first.guid.startswith("sha256:")
    assert len(first.guid) == len("sha256:") + 64
    assert first.guid == again.guid
    assert first.guid != other.guid


# -- Media RSS: what feedparser mixes up ------------------------------------------------


def test_media_title_and_description_do_not_replace_the_entry_s_own() -> None:
    feed = parse_fixture("media-rss.xml", url="https://voorbeeld.nl/feed.xml")
    first, second = feed.entries
    assert first.title == "De echte titel"
    assert first.summary_html == "De echte samenvatting."
    assert first.content_html == "<p>De echte inhoud.</p>"
    assert first.image_alt == "Twee ouders in gesprek met een jongere"
    # The second item has no title or description of its own, only media text.
    assert second.title == "Alleen inhoud: geen eigen titel en geen eigen samenvatting."
    assert second.summary_html == ""
    assert second.image_url == "https://voorbeeld.nl/foto-2.jpg"
    assert second.image_alt == "Groepstitel"


# -- other formats ----------------------------------------------------------------------


def test_atom_with_xml_base_resolves_relative_links() -> None:
    feed = parse_fixture("atom.xml", url="https://voorbeeld.nl/atom.xml", content_type=None)
    assert feed.warnings == ()
    assert feed.title == "Ervaringen & verhalen"
    assert feed.link == "https://voorbeeld.nl/blog/"
    first = feed.entries[0]
    assert first.guid == "tag:voorbeeld.nl,2024:verhaal-1"
    assert first.link == "https://voorbeeld.nl/blog/verhalen/een.html"
    assert 'href="https://voorbeeld.nl/blog/over.html"' in first.content_html
    assert 'src="https://voorbeeld.nl/blog/verhalen/foto.jpg"' in first.content_html
    assert feed.entries[1].link == "https://voorbeeld.nl/blog/twee.html"


def test_atom_html_title_becomes_text_and_author_is_the_name() -> None:
    first = parse_fixture("atom.xml", content_type=None).entries[0]
    assert first.title == "Cliëntenraad creëren"
    assert first.author == "Jan Jansen"
    assert first.categories == ("Mensen en initiatieven",)


def test_atom_text_content_is_escaped_never_trusted_as_html() -> None:
    first, second = parse_fixture("atom.xml", content_type=None).entries
    assert first.summary_html == (
        "<p>Een verhaal met &lt;script&gt;alert(1)&lt;/script&gt; als tekst"
        "<br>en een tweede regel.</p>"
    )
    assert second.content_html == (
        "<p>Platte tekst met &lt;b&gt;geen&lt;/b&gt; opmaak &amp; een ampersand.</p>\n"
        "<p>Tweede alinea.</p>"
    )
    assert second.summary_html == ""


def test_atom_dates_and_updated_only_entry() -> None:
    first, second = parse_fixture("atom.xml", content_type=None).entries
    assert first.published_at == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2024, 3, 6, 10, 0, tzinfo=UTC)
    assert second.published_at == second.updated_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def test_rss_091_in_latin_1() -> None:
    feed = parse_fixture("rss091.xml", content_type="text/xml")
    assert feed.title == "Oud nieuws"
    (entry,) = feed.entries
    assert entry.title == "Cliëntenraad opgericht"
    assert entry.link == entry.guid == "http://oud.voorbeeld.nl/1.html"
    assert entry.summary_html == "De cliëntenraad &amp; de jongerenraad."
    assert entry.published_at is None


def test_rss_092_with_escaped_html_and_an_image_enclosure() -> None:
    (entry,) = parse_fixture("rss092.xml", content_type=None).entries
    assert entry.title == "Verslag van de bijeenkomst"
    assert entry.summary_html == "<p>Het <b>verslag</b>.</p>"
    assert entry.categories == ("Kampvuurgesprekken",)
    assert entry.image_url == "http://voorbeeld.nl/foto.png"


def test_rss_10_rdf() -> None:
    feed = parse_fixture("rss10.xml", content_type="application/rdf+xml")
    assert feed.title == "RDF-nieuws"
    (entry,) = feed.entries
    assert entry.guid == entry.link == "https://voorbeeld.nl/artikel-1"
    assert entry.author == "Piet Pietersen"
    assert entry.categories == ("Mensen en initiatieven",)
    # dc:date is the only date: it serves as published and updated.
    assert entry.published_at == entry.updated_at == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)


def test_a_valid_feed_served_as_text_html_is_read_without_warnings() -> None:
    feed = parse_fixture("wordpress.xml", content_type="text/html")
    assert len(feed.entries) == 4
    assert feed.warnings == ()


def test_a_feed_without_entries_is_valid_and_empty() -> None:
    feed = parse_feed(rss(""), url=SITE_FEED)
    assert feed.entries == ()
    assert feed.title == "Test"


# -- entries that need a decision -------------------------------------------------------


def test_entry_without_title_takes_the_start_of_its_text() -> None:
    words = " ".join(f"woord{n}" for n in range(20))
    body = rss(
        f"<item><link>https://voorbeeld.nl/1</link><description>{words}</description></item>"
    )
    (entry,) = parse_feed(body, url=SITE_FEED).entries
    assert entry.title == " ".join(f"woord{n}" for n in range(12)) + "…"


def test_entry_with_nothing_to_show_is_skipped_with_a_warning() -> None:
    body = rss(
        "<item><link>https://voorbeeld.nl/leeg</link></item>"
        "<item><title>Wel iets</title><link>https://voorbeeld.nl/2</link></item>"
    )
    feed = parse_feed(body, url=SITE_FEED)
    assert [entry.title for entry in feed.entries] == ["Wel iets"]
    assert feed.warnings == ("skipped entry 1: it has no title, summary or content",)


def test_a_repeated_guid_keeps_the_first_entry() -> None:
    body = rss(
        '<item><title>Nieuwste</title><guid isPermaLink="false">id-1</guid></item>'
        '<item><title>Ouder</title><guid isPermaLink="false">id-1</guid></item>'
    )
    feed = parse_feed(body, url=SITE_FEED)
    assert [entry.title for entry in feed.entries] == ["Nieuwste"]
    assert feed.warnings == ("skipped entry 2: its id 'id-1' came before",)


def test_entries_are_capped_with_a_warning() -> None:
    items = "".join(f"<item><title>Bericht {n}</title><guid>g{n}</guid></item>" for n in range(502))
    feed = parse_feed(rss(items), url=SITE_FEED)
    assert len(feed.entries) == MAX_ENTRIES
    assert feed.entries[-1].title == f"Bericht {MAX_ENTRIES - 1}"
    assert feed.warnings == (f"the feed has 502 entries; kept the first {MAX_ENTRIES}",)


def test_overlong_fields_are_shortened_to_fit_the_database() -> None:
    long_title = "Lang " * 200
    long_guid = "g" * 1500
    body = rss(f"<item><title>{long_title}</title><guid>{long_guid}</guid></item>")
    (entry,) = parse_feed(body, url=SITE_FEED).entries
    assert len(entry.title) == 500
    assert entry.title.endswith("…")
    assert entry.guid.startswith("sha256:")


# -- content_hash -----------------------------------------------------------------------


def test_content_hash_is_stable_and_changes_with_what_readers_see(wordpress: ParsedFeed) -> None:
    entry = wordpress.entries[0]
    assert entry.content_hash == parse_fixture("wordpress.xml").entries[0].content_hash
    assert len(entry.content_hash) == 64
    edited = dataclasses.replace(entry, content_html=entry.content_html + "<p>Update</p>")
    retitled = dataclasses.replace(entry, title="Nieuwe titel")
    recategorized = dataclasses.replace(entry, categories=("Doe je mee?",))
    assert len({entry.content_hash, edited.content_hash, retitled.content_hash,
                recategorized.content_hash}) == 4  # fmt: skip


def test_content_hash_ignores_a_new_modified_date(wordpress: ParsedFeed) -> None:
    entry: FeedEntry = wordpress.entries[0]
    saved_again = dataclasses.replace(entry, updated_at=datetime(2024, 4, 1, tzinfo=UTC))
    assert saved_again.content_hash == entry.content_hash


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \n\t "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="empty response, not a feed") as caught:
        parse_feed(body, url=SITE_FEED)
    assert str(caught.value).startswith(SITE_FEED)


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None])
def test_html_page(content_type: str | None) -> None:
    with pytest.raises(FeedParseError) as caught:
        parse_fixture("not-a-feed.html", content_type=content_type)
    assert str(caught.value) == f"{SITE_FEED}: not a feed: the response is an HTML page"


def test_garbage() -> None:
    with pytest.raises(FeedParseError, match=r"not a feed: not an XML document \(") as caught:
        parse_fixture("garbage.bin", content_type="application/octet-stream")
    assert "\n" not in str(caught.value)


def test_json() -> None:
    with pytest.raises(FeedParseError, match="not a feed: the response looks like JSON"):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1.1"}', url=SITE_FEED)


def test_xml_that_is_not_a_feed() -> None:
    body = b'<?xml version="1.0"?><urlset><url><loc>https://x.nl/</loc></url></urlset>'
    with pytest.raises(FeedParseError, match="not a feed: an XML document, but not RSS or Atom"):
        parse_feed(body, url=SITE_FEED)


def test_malformed_feed_keeps_recovered_entries_with_a_warning() -> None:
    feed = parse_fixture("malformed.xml")
    assert [entry.title for entry in feed.entries] == [
        "Ouders & jongeren",
        "Tweede bericht",
        "Derde bericht",
    ]
    assert feed.entries[1].summary_html == "<p>Een open alinea</p>"
    (warning,) = feed.warnings
    assert warning.startswith("malformed feed, kept 3 recovered entries: not well-formed")
    assert "line 7" in warning


def test_malformed_feed_without_entries_is_an_error() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>A & B</title></channel>'
    with pytest.raises(FeedParseError, match="malformed feed with no entries: not well-formed"):
        parse_feed(body, url=SITE_FEED)


def test_billion_laughs_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(FeedParseError, match=r"refused: the document declares XML entities"):
        parse_fixture("billion-laughs.xml")
    assert time.monotonic() - started < 5  # expanded, it would be gigabytes


def test_quadratic_blowup_is_refused_fast() -> None:
    value = "a" * 50_000
    references = "&a;" * 50_000
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{value}">]>'
        f'<rss version="2.0"><channel><title>t</title><item><title>{references}</title>'
        f"</item></channel></rss>"
    ).encode()
    started = time.monotonic()
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(body, url=SITE_FEED)
    assert time.monotonic() - started < 5  # expanded, it would be 2.5 GB


def test_external_entity_is_refused_even_behind_comments_and_quoted_brackets() -> None:
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_fixture("xxe.xml")


def test_entity_declaration_in_utf16_is_refused() -> None:
    text = (FEEDS / "billion-laughs.xml").read_text()
    body = text.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>').encode("utf-16")
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(body, url=SITE_FEED, content_type="application/xml")


def test_entity_text_inside_an_article_is_not_refused() -> None:
    body = rss(
        "<item><title>XML uitgelegd</title>"
        '<description><![CDATA[Nooit <!ENTITY lol "lol"> in een feed]]></description></item>'
    )
    (entry,) = parse_feed(body, url=SITE_FEED).entries
    assert entry.title == "XML uitgelegd"


def test_a_body_that_names_a_local_file_is_not_read_from_disk(tmp_path: Path) -> None:
    # feedparser opens a bytes argument as a file path when it can.
    local_feed = tmp_path / "feed.xml"
    local_feed.write_bytes((FEEDS / "wordpress.xml").read_bytes())
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_feed(str(local_feed).encode(), url=SITE_FEED)


# -- encodings that hide markup, and entries too large -------------------------------------

UTF7_REFUSAL = "refused: the document is in UTF-7, which can hide markup from the checks"


def test_utf7_declared_in_the_document_is_refused() -> None:
    body = b'<?xml version="1.0" encoding="utf-7"?>+ADw-rss version="2.0"+AD4-+ADw-/rss+AD4-'
    with pytest.raises(FeedParseError, match=UTF7_REFUSAL):
        parse_feed(body, url=SITE_FEED, content_type="application/rss+xml")


def test_utf7_named_by_the_http_charset_is_refused() -> None:
    body = b'+ADw-rss version="2.0"+AD4-+ADw-/rss+AD4-'
    with pytest.raises(FeedParseError, match=UTF7_REFUSAL):
        parse_feed(body, url=SITE_FEED, content_type="application/rss+xml; charset=UTF-7")


def test_an_escape_codec_as_charset_is_refused() -> None:
    body = b'\\x3crss version="2.0"\\x3e\\x3c/rss\\x3e'
    with pytest.raises(FeedParseError, match="UNICODE-ESCAPE, which can hide markup"):
        parse_feed(body, url=SITE_FEED, content_type="application/xml; charset=unicode_escape")


def test_entity_declaration_in_a_declared_ebcdic_code_page_is_refused() -> None:
    text = '<?xml version="1.0" encoding="cp500"?><!DOCTYPE rss [<!ENTITY a "x">]><rss/>'
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(text.encode("cp500"), url=SITE_FEED, content_type="application/xml")


def test_an_entry_over_the_html_cap_is_skipped_with_a_warning() -> None:
    huge = "<p>" + "x" * MAX_HTML_CHARS + "</p>"
    body = rss(
        f"<item><title>Te groot</title><description><![CDATA[{huge}]]></description></item>"
        "<item><title>Gewoon</title><description>kort</description></item>"
    )
    parsed = parse_feed(body, url=SITE_FEED)
    assert [entry.title for entry in parsed.entries] == ["Gewoon"]
    assert parsed.warnings == (
        f"skipped entry 1: its text is {len(huge):,} characters, "
        f"over the limit of {MAX_HTML_CHARS:,}",
    )
