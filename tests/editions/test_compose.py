"""Composing an edition: golden files, safety of feed and reader values, themes, slots."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
from lxml import html as lxml_html  # type: ignore[import-untyped,unused-ignore]

from newsletter.core.config import Settings
from newsletter.core.errors import CompositionError
from newsletter.core.templating import render_template, template_environment, template_module
from newsletter.editions.compose import (
    ArticleView,
    EditionContent,
    _render_documents,
    compose_edition,
    compose_web_version,
    sample_recipient,
    select_articles,
    web_version_url,
)
from newsletter.editions.personalized import ComposedMail, RecipientValues
from tests.support.colours import contrast_ratio
from tests.support.paths import GOLDEN_DIR, TEMPLATES_DIR
from tests.support.sample_edition import BASE_URL, NEWS, mail_settings, seed_articles, seed_edition

UPDATE_GOLDEN = os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Composition touches no database: plain settings, unlike conftest's `settings`.
    return mail_settings(tmp_path)


@pytest.fixture
def environment(settings: Settings) -> jinja2.Environment:
    return template_environment(settings)


def compose(
    settings: Settings,
    environment: jinja2.Environment,
    content: EditionContent | None = None,
    themes: frozenset[str] | None = None,
) -> ComposedMail:
    mail = compose_edition(
        content or seed_edition(), settings, environment=environment, themes=themes
    )
    assert mail is not None
    return mail


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; rerun with NEWSLETTER_UPDATE_GOLDEN=1 if intended"


def urls_in_attributes(document: str) -> list[str]:
    tree = lxml_html.document_fromstring(document)
    return [
        value for element in tree.iter() for key, value in element.items() if key in ("href", "src")
    ]


# --- golden files -----------------------------------------------------------------------


def test_html_matches_golden_file(settings: Settings, environment: jinja2.Environment) -> None:
    mail = compose(settings, environment)
    check_golden("edition.html", mail.html_for(sample_recipient(settings)))


def test_text_matches_golden_file(settings: Settings, environment: jinja2.Environment) -> None:
    mail = compose(settings, environment)
    check_golden("edition.txt", mail.text_for(sample_recipient(settings)))


# --- content arrives intact -------------------------------------------------------------


@pytest.fixture
def filled(settings: Settings, environment: jinja2.Environment) -> tuple[str, str]:
    mail = compose(settings, environment)
    recipient = sample_recipient(settings)
    return mail.html_for(recipient), mail.text_for(recipient)


def test_titles_dates_and_diacritics_survive(filled: tuple[str, str]) -> None:
    html_document, text = filled
    tree = lxml_html.document_fromstring(html_document)
    visible = tree.text_content()
    for article in seed_articles():
        assert article.title in visible
        assert article.title in text
    for date in ("13 mei 2021", "12 september 2022", "2 november 2023", "17 november 2026"):
        assert date in visible
        assert date in text
    for word in ("cliëntenraad", "cliëntenraden", "‘Radicale vernieuwing jeugdzorg’", "Wat als…"):
        assert word in html_document
        assert word in text
    assert "12 mei 2021" not in visible


def test_themes_and_excerpts_are_shown(filled: tuple[str, str]) -> None:
    html_document, text = filled
    assert "Kampvuurgesprekken" in html_document
    assert "13 mei 2021 · Opstarten beweging" in text
    assert "12 september 2022 · Opstarten beweging · Kampvuurgesprekken · Mensen en" in text
    # Tags are not themes.
    assert "jeugdbescherming" not in re.findall(r'class="label"[^>]*>([^<]*)<', html_document)
    # Without a summary the excerpt comes from the content and is cut with an ellipsis.
    assert "Hoe staat het er nu voor? Tijdens onze" in html_document
    assert "…</p>" in html_document


def test_the_subject_is_the_title_of_the_html(filled: tuple[str, str]) -> None:
    tree = lxml_html.document_fromstring(filled[0])
    assert tree.findtext(".//title") == seed_edition().subject


def test_subject_template_gives_one_line(
    settings: Settings, environment: jinja2.Environment
) -> None:
    when = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    subject = render_template(
        environment, "email/subject.txt.j2", {"site": settings.site, "date": when}
    )
    assert subject.strip() == "Nieuwsbrief Radicale vernieuwing jeugdzorg – 17 november 2026"
    assert "\n" not in subject.strip()


def test_the_preview_line_names_the_first_articles(filled: tuple[str, str]) -> None:
    assert "Wat als… ouders gewoon om hulp kunnen vragen? · Eerste gesprekken" in filled[0]


# --- nothing from elsewhere, nothing that runs ----------------------------------------


def test_html_is_dutch_and_loads_nothing(settings: Settings, filled: tuple[str, str]) -> None:
    html_document = filled[0]
    assert html_document.startswith("<!DOCTYPE html>")
    assert '<html lang="nl"' in html_document
    lowered = html_document.lower()
    for forbidden in ("<script", "fonts.googleapis", "<link", "@import", "url(", "<iframe"):
        assert forbidden not in lowered


def allowed_url(url: str, settings: Settings, articles: tuple[ArticleView, ...]) -> bool:
    site = settings.site
    if url in {a.link for a in articles} | {a.image_url for a in articles}:
        return True
    if url in (site.website_url, site.join_url) or url.startswith(f"{site.base_url}/"):
        return True
    return url.startswith(("mailto:", "tel:"))


def test_every_link_goes_to_the_articles_or_our_own_sites(
    settings: Settings, environment: jinja2.Environment
) -> None:
    articles = seed_articles()
    with_image = replace(
        articles[0],
        image_url="https://www.rvjeugdzorg.nl/wp-content/uploads/kampvuur.jpg",
        image_alt="Mensen in gesprek rond een kampvuur",
    )
    content = seed_edition(articles=(with_image, *articles[1:]))
    html_document = compose(settings, environment, content).html_for(sample_recipient(settings))
    urls = urls_in_attributes(html_document)
    assert urls
    for url in urls:
        assert allowed_url(url, settings, content.articles), url
    # Also every http(s) URL anywhere in the source, declarations included.
    for url in re.findall(r"https?://[^\s\"'<>]+", html_document):
        assert url == "http://www.w3.org/1999/xhtml" or allowed_url(
            url, settings, content.articles
        ), url


def test_unsafe_article_links_and_images_are_left_out(
    settings: Settings, environment: jinja2.Environment
) -> None:
    article = replace(
        seed_articles()[0],
        link="javascript:alert(1)",
        image_url="data:image/png;base64,AAAA",
        image_alt="iets",
    )
    html_document = compose(settings, environment, seed_edition(articles=(article,))).html_for(
        sample_recipient(settings)
    )
    assert "javascript:" not in html_document
    assert "data:image" not in html_document
    assert "<img" not in html_document
    assert article.title in html_document  # shown, just not linked


def test_images_from_other_hosts_are_left_out(
    settings: Settings, environment: jinja2.Environment
) -> None:
    # An image from elsewhere would tell that host who opened the mail, and when.
    article = replace(
        seed_articles()[0],
        image_url="https://tracker.example.com/pixel.gif",
        image_alt="Mensen in gesprek",
    )
    html_document = compose(settings, environment, seed_edition(articles=(article,))).html_for(
        sample_recipient(settings)
    )
    assert "tracker.example.com" not in html_document
    assert "<img" not in html_document


def test_every_image_has_alt_text(settings: Settings, environment: jinja2.Environment) -> None:
    articles = seed_articles()
    described = replace(
        articles[0], image_url="https://www.rvjeugdzorg.nl/a.jpg", image_alt="Ouders"
    )
    undescribed = replace(articles[1], image_url="https://www.rvjeugdzorg.nl/b.jpg", image_alt=None)
    content = seed_edition(articles=(described, undescribed))
    tree = lxml_html.document_fromstring(
        compose(settings, environment, content).html_for(sample_recipient(settings))
    )
    images = tree.findall(".//img")
    assert [image.get("alt") for image in images] == ["Ouders", ""]


# --- hostile content --------------------------------------------------------------------


def test_hostile_feed_text_cannot_inject_markup(
    settings: Settings, environment: jinja2.Environment
) -> None:
    hostile = replace(
        seed_articles()[0],
        title='<script>alert("titel")</script>',
        summary_html="<p>&lt;img src=x onerror=alert(1)&gt; en &lt;/p&gt;&lt;a href=x&gt;</p>",
        image_url="https://www.rvjeugdzorg.nl/a.jpg",
        image_alt='" onerror="alert(1)',
    )
    mail = compose(settings, environment, seed_edition(articles=(hostile,)))
    html_document = mail.html_for(sample_recipient(settings))
    text = mail.text_for(sample_recipient(settings))
    assert "<script" not in html_document.lower()
    tree = lxml_html.document_fromstring(html_document)
    assert [image.get("src") for image in tree.iter("img")] == ["https://www.rvjeugdzorg.nl/a.jpg"]
    assert tree.find(".//img").get("alt") == '" onerror="alert(1)'
    for element in tree.iter():
        assert not any(name.startswith("on") for name in element.attrib)
    assert all(a.get("href") != "x" for a in tree.iter("a"))
    assert '<script>alert("titel")</script>' in tree.text_content()
    assert "<img src=x onerror=alert(1)> en </p><a href=x>" in tree.text_content()
    # The text version shows them as the text they are.
    assert '<script>alert("titel")</script>' in text


def test_a_forged_slot_marker_in_the_feed_is_not_filled(
    settings: Settings, environment: jinja2.Environment
) -> None:
    forged = "slot-0123456789abcdef-unsubscribe-url slot-{nonce}-name"
    article = replace(seed_articles()[0], title=forged, summary_html=f"<p>{forged}</p>")
    benign = compose(settings, environment)
    mail = compose(settings, environment, seed_edition(articles=(article,)))
    assert mail.html.slots == benign.html.slots
    assert mail.text.slots == benign.text.slots
    html_document = mail.html_for(sample_recipient(settings))
    # Preview line, title, the button's label and the excerpt: all verbatim.
    assert html_document.count(forged) == 4
    assert forged in mail.text_for(sample_recipient(settings))


def test_a_hostile_name_is_escaped_in_html_and_one_line_in_text(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment)
    recipient = RecipientValues(
        email='eva"<i>@example.org',
        name="Eva\r\nBcc: x@example.org\0 <b>vet</b>",
        unsubscribe_url=f'{BASE_URL}/unsubscribe/abc"><script>',
        preferences_url=f"{BASE_URL}/preferences/abc?a=1&b=2",
    )
    html_document = mail.html_for(recipient)
    assert "<b>vet" not in html_document
    assert "Beste Eva Bcc: x@example.org &lt;b&gt;vet&lt;/b&gt;," in html_document
    assert "<i>@" not in html_document
    assert "<script" not in html_document
    assert f"{BASE_URL}/preferences/abc?a=1&amp;b=2" in html_document
    tree = lxml_html.document_fromstring(html_document)
    hrefs = {a.text_content(): a.get("href") for a in tree.iter("a")}
    assert hrefs["Afmelden"] == f'{BASE_URL}/unsubscribe/abc"><script>'
    assert hrefs["Voorkeuren aanpassen"] == f"{BASE_URL}/preferences/abc?a=1&b=2"

    text = mail.text_for(recipient)
    assert "\r" not in text
    assert "\0" not in text
    assert "Beste Eva Bcc: x@example.org <b>vet</b>,\n" in text


def test_an_unknown_name_gets_the_templates_fallback(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment)
    for name in (None, "", " \r\n "):
        recipient = replace(sample_recipient(settings), name=name)
        assert "Beste lezer," in mail.html_for(recipient)
        assert "Beste lezer,\n" in mail.text_for(recipient)


def test_a_very_long_name_is_cut(settings: Settings, environment: jinja2.Environment) -> None:
    mail = compose(settings, environment)
    text = mail.text_for(replace(sample_recipient(settings), name="a" * 5000))
    assert f"Beste {'a' * 100},\n" in text


# --- the intro ----------------------------------------------------------------------------


def test_intro_markdown_is_rendered_but_raw_html_is_shown_as_text(
    settings: Settings, environment: jinja2.Environment
) -> None:
    intro = "Hallo **allemaal**! <script>alert(1)</script> <b>vet</b>\n\n- een\n- twee\n"
    mail = compose(settings, environment, seed_edition(intro_markdown=intro))
    html_document = mail.html_for(sample_recipient(settings))
    assert "<strong>allemaal</strong>" in html_document
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;vet&lt;/b&gt;" in html_document
    assert "<li>een</li>" in html_document
    # The text version shows the words, without Markdown's marks.
    text = mail.text_for(sample_recipient(settings))
    assert "Hallo allemaal! <script>alert(1)</script> <b>vet</b>\n\n- een\n- twee\n" in text


def test_intro_links_keep_their_target(filled: tuple[str, str]) -> None:
    tree = lxml_html.document_fromstring(filled[0])
    platform = [a for a in tree.iter("a") if a.text_content() == "ons platform"]
    assert platform[0].get("href") == "https://www.rvjeugdzorg.nl/praat-mee"


def test_an_empty_intro_leaves_no_intro_block(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment, seed_edition(intro_markdown="  \n"))
    html_document = mail.html_for(sample_recipient(settings))
    assert 'class="intro"' not in html_document
    assert "Fijn dat je meeleest!" in html_document
    assert "Welkom" not in mail.text_for(sample_recipient(settings))


# --- themes -------------------------------------------------------------------------------


def test_all_articles_without_a_theme_filter(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment)
    assert mail.article_count == 5
    assert mail.themes is None
    assert "Je krijgt alleen berichten over" not in mail.html_for(sample_recipient(settings))


def test_a_theme_filter_keeps_only_its_articles(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment, themes=frozenset({"kampvuurgesprekken"}))
    assert mail.article_count == 2
    assert mail.themes == frozenset({"kampvuurgesprekken"})
    recipient = sample_recipient(settings)
    html_document = mail.html_for(recipient)
    assert "Wat als… ouders gewoon om hulp kunnen vragen?" in html_document
    assert "Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!" in html_document
    assert "Eerste opbrengsten verkenning" not in html_document
    assert "Je krijgt alleen berichten over ‘Kampvuurgesprekken’." in html_document
    assert "Je krijgt alleen berichten over ‘Kampvuurgesprekken’." in mail.text_for(recipient)
    assert mail.html.slots.count("preferences_url") == 2  # here and in the footer


def test_several_themes_are_a_union(settings: Settings, environment: jinja2.Environment) -> None:
    themes = frozenset({"doe-je-mee", "kampvuurgesprekken"})
    mail = compose(settings, environment, themes=themes)
    text = mail.text_for(sample_recipient(settings))
    # A closing quote after a question mark ends the sentence: no full stop after it.
    assert (
        "Je krijgt alleen berichten over ‘Kampvuurgesprekken’ en ‘Doe je mee?’ Wil je iets"
        in " ".join(text.split())
    )
    chosen = select_articles(
        seed_articles(), settings, themes=frozenset({"doe-je-mee", "kampvuurgesprekken"})
    )
    assert [article.title[:20] for article in chosen] == [
        "Wat als… ouders gewo",
        "Nieuw onderzoek jeug",
        "LOC start beweging ‘",
    ]


def test_a_theme_ending_in_a_question_mark_gets_no_extra_full_stop(
    settings: Settings, environment: jinja2.Environment
) -> None:
    mail = compose(settings, environment, themes=frozenset({"doe-je-mee"}))
    recipient = sample_recipient(settings)
    html_text = " ".join(
        lxml_html.document_fromstring(mail.html_for(recipient)).text_content().split()
    )
    text = " ".join(mail.text_for(recipient).split())
    for shown in (html_text, text):
        assert "Je krijgt alleen berichten over ‘Doe je mee?’ Wil je iets anders lezen?" in shown
        assert "?’." not in shown and "?." not in shown


def test_no_mail_when_no_article_matches(
    settings: Settings, environment: jinja2.Environment
) -> None:
    content = seed_edition()
    assert compose_edition(content, settings, environment=environment, themes=frozenset()) is None
    assert (
        compose_edition(
            content, settings, environment=environment, themes=frozenset({"mensen-zonder-thema"})
        )
        is None
    )
    assert compose_edition(seed_edition(articles=()), settings, environment=environment) is None


# --- the text version ---------------------------------------------------------------------


def test_text_lines_are_short_and_never_over_998_octets(
    settings: Settings, environment: jinja2.Environment
) -> None:
    long_word = "jeugdzorg" * 300
    article = replace(seed_articles()[0], title=f"Een heel lange titel {long_word} eind")
    mail = compose(settings, environment, seed_edition(articles=(*seed_articles(), article)))
    recipient = replace(sample_recipient(settings), name="é" * 600)
    for line in mail.text_for(recipient).split("\n"):
        assert len(line.encode("utf-8")) <= 998
    for line in mail.text_for(sample_recipient(settings)).split("\n"):
        if long_word[:50] not in line and "://" not in line:
            assert len(line) <= 78, line


def test_text_ends_with_the_links_in_full(filled: tuple[str, str], settings: Settings) -> None:
    text = filled[1]
    assert f"Afmelden: {BASE_URL}/unsubscribe/voorbeeld-token" in text
    assert f"Voorkeuren aanpassen: {BASE_URL}/preferences/voorbeeld-token" in text
    assert f"Bekijk in je browser: {web_version_url(settings, 12)}" in text
    assert f"Lees verder: {NEWS}/eerste-opbrengsten-verkenning/" in text
    assert "rvjeugdzorg@loc.nl" in text
    assert "030 284 3200" in text
    assert "https://www.rvjeugdzorg.nl/praat-mee" in text


# --- slots ------------------------------------------------------------------------------


def test_fill_equals_rendering_the_values_directly(
    settings: Settings, environment: jinja2.Environment
) -> None:
    recipient = RecipientValues(
        email="anais.de.vries@example.org",
        name="Anaïs de Vries",
        unsubscribe_url=f"{BASE_URL}/unsubscribe/t0k3n?lijst=1&taal=nl",
        preferences_url=f"{BASE_URL}/preferences/t0k3n",
    )
    content = seed_edition()
    mail = compose(settings, environment, content)
    direct_html, direct_text = _render_documents(
        content,
        content.articles,
        settings,
        environment=environment,
        themes=None,
        recipient={
            "name": "Anaïs de Vries",
            "email": recipient.email,
            "unsubscribe_url": recipient.unsubscribe_url,
            "preferences_url": recipient.preferences_url,
        },
    )
    assert mail.html_for(recipient) == direct_html
    assert mail.text_for(recipient) == direct_text


def test_compose_is_deterministic_apart_from_the_nonce(
    settings: Settings, environment: jinja2.Environment
) -> None:
    first = compose(settings, environment)
    second = compose(settings, environment)
    assert first.html.parts == second.html.parts
    assert first.text.parts == second.text.parts
    assert first == second
    assert first.html.slots.count("unsubscribe_url") == 1
    assert set(first.html.slots) == {"name", "email", "unsubscribe_url", "preferences_url"}


def test_slot_markers_are_plain_ascii(settings: Settings, environment: jinja2.Environment) -> None:
    content = seed_edition()
    _, text = _render_documents(
        content,
        content.articles,
        settings,
        environment=environment,
        themes=None,
        recipient={
            slot: f"[{slot}]" for slot in ("name", "email", "unsubscribe_url", "preferences_url")
        },
    )
    assert "Beste [name]," in text
    mail = compose(settings, environment)
    joined = "".join(mail.text.parts)
    assert (
        re.search(r"slot-[0-9a-f]{16}-", mail.text.fill(dict.fromkeys(mail.text.slots, ""))) is None
    )
    assert "slot-" not in joined


def test_sample_recipient_and_web_version(settings: Settings) -> None:
    assert sample_recipient(settings) == RecipientValues(
        email="voorbeeld@example.org",
        name="Voorbeeld",
        unsubscribe_url=f"{BASE_URL}/unsubscribe/voorbeeld-token",
        preferences_url=f"{BASE_URL}/preferences/voorbeeld-token",
    )
    assert web_version_url(settings, 7) == f"{BASE_URL}/archive/7"


# --- palette ------------------------------------------------------------------------------


def test_contrast_helper_knows_black_on_white() -> None:
    assert contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21)
    assert contrast_ratio("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)


def test_every_text_colour_meets_wcag_aa(environment: jinja2.Environment) -> None:
    palette = template_module(environment, "email/palette.j2")
    assert len(palette.text_pairs) >= 8
    for usage, foreground, background in palette.text_pairs:
        ratio = contrast_ratio(foreground, background)
        assert ratio >= 4.5, f"{usage}: {foreground} on {background} is only {ratio:.2f}:1"


def test_the_mail_uses_only_palette_colours(
    environment: jinja2.Environment, filled: tuple[str, str]
) -> None:
    palette = template_module(environment, "email/palette.j2")
    allowed = {
        str(value).lower()
        for name, value in vars(palette).items()
        if isinstance(value, str) and value.startswith("#")
    }
    used = {colour.lower() for colour in re.findall(r"#[0-9a-fA-F]{6}\b", filled[0])}
    assert used <= allowed, used - allowed


def test_the_hidden_preview_line_has_no_colour_of_its_own(filled: tuple[str, str]) -> None:
    # Text hidden by a colour close to its background is what spam filters look for
    # (SpamAssassin's HTML_FONT_LOW_CONTRAST); the preview line is hidden by display and
    # size alone, and still comes first in the body, where mail programs take it from.
    body = filled[0].split("<body", 1)[1]
    first_text = re.search(r"<div[^>]*>([^<]+)</div>", body)
    assert first_text is not None
    assert "Wat als" in first_text.group(1)
    style = re.search(r'style="([^"]*)"', first_text.group(0))
    assert style is not None and "display:none" in style.group(1).replace(" ", "")
    assert "color" not in style.group(1) and "opacity" not in style.group(1)


# --- templates: overrides and errors -------------------------------------------------------


def override(tmp_path: Path, name: str, source: str) -> Settings:
    folder = tmp_path / "eigen-templates"
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    return mail_settings(tmp_path, templates={"dir": "eigen-templates"})


def test_staff_templates_take_precedence(tmp_path: Path) -> None:
    settings = override(tmp_path, "email/strings.j2", '{% set name_fallback = "vriend" %}')
    environment = template_environment(settings)
    mail = compose(settings, environment)
    recipient = replace(sample_recipient(settings), name=None)
    assert "Beste vriend," in mail.html_for(recipient)
    # Templates the staff did not override still come from the project.
    assert "Doe mee!" in mail.html_for(recipient)


def test_the_name_fallback_must_be_set(tmp_path: Path) -> None:
    settings = override(tmp_path, "email/strings.j2", "{# nothing here #}")
    with pytest.raises(CompositionError, match="name_fallback"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_a_missing_override_folder_is_a_config_error(tmp_path: Path) -> None:
    from newsletter.core.errors import ConfigError

    settings = mail_settings(tmp_path, templates={"dir": "bestaat-niet"})
    with pytest.raises(ConfigError, match="bestaat-niet"):
        template_environment(settings)


def test_undefined_variable_names_template_and_line(tmp_path: Path) -> None:
    settings = override(
        tmp_path, "email/_join.mjml.j2", "<mj-section>\n<mj-column>\n{{ onbekend.veld }}\n"
    )
    with pytest.raises(CompositionError) as caught:
        compose_edition(seed_edition(), settings, environment=template_environment(settings))
    message = str(caught.value)
    assert "email/newsletter.mjml.j2" in message
    assert "_join.mjml.j2" in message
    assert "line 3" in message
    assert "onbekend" in message
    assert "\n" not in message


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    settings = override(tmp_path, "email/newsletter.txt.j2", "Hallo\n{% if %}\n")
    with pytest.raises(CompositionError, match=r"email/newsletter.txt.j2, line 2: syntax error"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_missing_template(environment: jinja2.Environment) -> None:
    with pytest.raises(CompositionError, match=r"template email/bestaat-niet\.j2 not found"):
        render_template(environment, "email/bestaat-niet.j2", {})


def test_invalid_mjml_is_a_composition_error(tmp_path: Path) -> None:
    settings = override(tmp_path, "email/_join.mjml.j2", "<mj-section><mj-column>\n")
    with pytest.raises(CompositionError, match="invalid MJML"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_a_mail_without_unsubscribe_link_is_refused(tmp_path: Path) -> None:
    settings = override(tmp_path, "email/_footer.mjml.j2", "")
    with pytest.raises(CompositionError, match="unsubscribe_url"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_a_filter_on_a_reader_value_is_refused(tmp_path: Path) -> None:
    source = (TEMPLATES_DIR / "email/_greeting.mjml.j2").read_text()
    settings = override(
        tmp_path,
        "email/_greeting.mjml.j2",
        source.replace("{{ recipient.name }}", "{{ recipient.name|upper }}"),
    )
    with pytest.raises(CompositionError, match="changed by a filter"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_a_template_that_loads_a_font_is_refused(tmp_path: Path) -> None:
    source = (TEMPLATES_DIR / "email/_head.mjml.j2").read_text()
    font = (
        '<mj-font name="Open Sans" href="https://fonts.googleapis.com/css?family=Open+Sans" />\n'
        '<mj-attributes><mj-all font-family="Open Sans, sans-serif" /></mj-attributes>\n'
    )
    settings = override(tmp_path, "email/_head.mjml.j2", source + font)
    with pytest.raises(CompositionError, match="may not"):
        compose_edition(seed_edition(), settings, environment=template_environment(settings))


def test_autoescape_is_off_only_for_text_templates(environment: jinja2.Environment) -> None:
    value = {"value": "<a & b>"}
    assert environment.from_string("{{ value }}").render(value) == "&lt;a &amp; b&gt;"
    autoescape = environment.autoescape
    assert callable(autoescape)
    assert autoescape("email/x.mjml.j2") and autoescape("web/x.html.j2") and autoescape("x.html")
    assert not autoescape("email/newsletter.txt.j2")


def test_the_mail_offers_light_and_dark(filled: tuple[str, str]) -> None:
    head = lxml_html.document_fromstring(filled[0]).find("head")
    metas = {meta.get("name"): meta.get("content") for meta in head.iter("meta")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    assert "@media (prefers-color-scheme: dark)" in filled[0]


def test_every_dark_mode_text_colour_meets_wcag_aa(environment: jinja2.Environment) -> None:
    palette = template_module(environment, "email/palette.j2")
    assert len(palette.dark_text_pairs) == len(palette.text_pairs)
    for usage, foreground, background in palette.dark_text_pairs:
        ratio = contrast_ratio(foreground, background)
        assert ratio >= 4.5, f"{usage}: {foreground} on {background} is only {ratio:.2f}:1"


# --- one greeting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "intro",
    [
        "Beste lezer,\n\nDeze maand gingen we op pad.",
        "Hallo allemaal! Deze maand gingen we op pad.",
        "**Lieve ouders en jongeren,**\n\nDeze maand gingen we op pad.",
    ],
)
def test_an_intro_that_greets_is_the_only_greeting(
    settings: Settings, environment: jinja2.Environment, intro: str
) -> None:
    mail = compose(settings, environment, seed_edition(intro_markdown=intro))
    recipient = replace(sample_recipient(settings), name="Anouk")
    html, text = mail.html_for(recipient), mail.text_for(recipient)
    assert "Beste Anouk" not in html and "Beste Anouk" not in text
    greeting = intro.split()[0].strip("*")
    assert html.count(greeting) == 1 and text.count(greeting) == 1
    web = compose_web_version(seed_edition(intro_markdown=intro), settings, environment=environment)
    assert "Beste lezer," not in web or greeting == "Beste"
    assert web.count(greeting) == 1


@pytest.mark.parametrize(
    "intro",
    ["Deze maand gingen we op pad.", "Dagelijks gebeurt er veel.", "Beste verhalen van 2026."],
)
def test_an_intro_without_a_greeting_gets_the_personal_one(
    settings: Settings, environment: jinja2.Environment, intro: str
) -> None:
    mail = compose(settings, environment, seed_edition(intro_markdown=intro))
    recipient = replace(sample_recipient(settings), name="Anouk")
    assert "Beste Anouk," in mail.html_for(recipient)
    assert "Beste Anouk,\n" in mail.text_for(recipient)
