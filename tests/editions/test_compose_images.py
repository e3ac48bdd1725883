"""Images in the mail come only from hosts the settings name, never from the feed's say-so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lxml import html as lxml_html  # type: ignore[import-untyped,unused-ignore]

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.compose import (
    ArticleView,
    EditionContent,
    compose_edition,
    compose_web_version,
    image_hosts,
    sample_recipient,
)
from tests.support.sample_edition import BASE_URL, mail_settings, seed_articles, seed_edition

TRACKER = "http://tracker.example/pixel.gif?edition=12&list=rvj"


def settings_with(tmp_path: Path, **site: Any) -> Settings:
    return mail_settings(tmp_path, site={"base_url": BASE_URL, **site})


def tracked_article(**changes: Any) -> ArticleView:
    """An item whose link and enclosure both sit on the tracker's host."""
    fields: dict[str, Any] = {
        "link": "http://tracker.example/artikel/1",
        "image_url": TRACKER,
        "image_alt": "Jongeren op de actiedag",
    }
    fields.update(changes)
    return replace(seed_articles()[0], **fields)


def mail_html(settings: Settings, content: EditionContent) -> str:
    mail = compose_edition(content, settings, environment=template_environment(settings))
    assert mail is not None
    return mail.html_for(sample_recipient(settings))


def image_sources(document: str) -> list[str]:
    return [image.get("src") for image in lxml_html.document_fromstring(document).iter("img")]


def visible_text(document: str) -> str:
    return " ".join(lxml_html.document_fromstring(document).text_content().split())


def test_a_feed_cannot_put_a_tracking_image_in_the_mail(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    content = seed_edition(articles=(tracked_article(),))
    for document in (
        mail_html(settings, content),
        compose_web_version(content, settings, environment=template_environment(settings)),
    ):
        assert "tracker.example/pixel.gif" not in document
        assert image_sources(document) == []
        # What the image showed is still told, in words.
        assert "Jongeren op de actiedag" in visible_text(document)


def test_a_dropped_image_without_a_description_leaves_nothing(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    document = mail_html(settings, seed_edition(articles=(tracked_article(image_alt=None),)))
    assert image_sources(document) == []
    assert "Afbeelding" not in visible_text(document)


def test_images_from_the_hosts_the_settings_name_are_shown(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        image_hosts=["Beeld.RVJeugdzorg.nl", "loc.nl"],
        website_url="https://www.rvjeugdzorg.nl",
    )
    assert image_hosts(settings) == frozenset(
        {"www.rvjeugdzorg.nl", "nieuwsbrief.rvjeugdzorg.nl", "beeld.rvjeugdzorg.nl", "loc.nl"}
    )
    allowed = (
        "https://www.rvjeugdzorg.nl/wp-content/uploads/a.jpg",
        f"{BASE_URL}/static/b.png",
        "https://beeld.rvjeugdzorg.nl/c.jpg",
        "https://loc.nl/d.jpg",
    )
    refused = (
        "https://cdn.loc.nl/e.jpg",  # a subdomain of a listed host is another host
        "https://rvjeugdzorg.nl.tracker.example/f.jpg",
        "https://www.rvjeugdzorg.nl@tracker.example/g.jpg",
    )
    articles = tuple(
        replace(article, image_url=url, image_alt=f"foto {number}")
        for number, (article, url) in enumerate(
            zip(seed_articles() * 2, allowed + refused, strict=False)
        )
    )
    document = mail_html(settings, seed_edition(articles=articles))
    assert image_sources(document) == list(allowed)


def test_the_article_link_no_longer_vouches_for_its_image(tmp_path: Path) -> None:
    # Before, an image on the article's own host counted as first-party: the feed
    # chooses both, so the feed could choose any host.
    settings = settings_with(tmp_path)
    article = tracked_article(
        link="https://blog.example.org/post/", image_url="https://blog.example.org/foto.jpg"
    )
    assert image_sources(mail_html(settings, seed_edition(articles=(article,)))) == []


def test_an_intro_image_from_another_host_is_dropped_with_its_words_kept(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    intro = (
        "Kijk mee: ![Ouders aan tafel](http://tracker.example/open.gif) en "
        "![Actiedag](https://www.rvjeugdzorg.nl/wp-content/uploads/actiedag.jpg)"
    )
    document = mail_html(settings, seed_edition(intro_markdown=intro))
    assert image_sources(document) == ["https://www.rvjeugdzorg.nl/wp-content/uploads/actiedag.jpg"]
    assert "tracker.example" not in document
    assert "Kijk mee: Ouders aan tafel en" in visible_text(document)
