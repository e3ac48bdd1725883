"""Compose an edition into finished HTML and text mail, split where each reader differs."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from newsletter.content.sanitize import clean_html, excerpt
from newsletter.content.themes import article_themes, theme_names
from newsletter.core.config import Settings
from newsletter.core.errors import CompositionError
from newsletter.core.templating import render_template, template_module
from newsletter.core.text import bare, one_line
from newsletter.editions.htmlmail import finished_html, finished_text
from newsletter.editions.personalized import (
    ComposedMail,
    RecipientValues,
    slot_markers,
    split_at_slots,
)
from newsletter.editions.plaintext import intro_greets, intro_text

HTML_TEMPLATE = "email/newsletter.mjml.j2"
TEXT_TEMPLATE = "email/newsletter.txt.j2"
STRINGS_TEMPLATE = "email/strings.j2"


@dataclass(frozen=True)
class ArticleView:
    """An article as the mail shows it; the HTML fields come from the feed (untrusted)."""

    title: str
    link: str | None
    published_at: datetime | None
    categories: tuple[str, ...]
    summary_html: str
    content_html: str
    image_url: str | None
    image_alt: str | None


@dataclass(frozen=True)
class ItemView:
    """A hand-written item (editions/items.py): plain text and a checked http(s) link."""

    title: str
    link: str
    text: str


@dataclass(frozen=True)
class EditionContent:
    """What one edition says, the same for every reader."""

    number: int
    subject: str
    intro_markdown: str
    created_at: datetime
    articles: tuple[ArticleView, ...]
    # Shown after the articles, as cards, to every reader whatever themes they chose.
    items: tuple[ItemView, ...] = ()
    # "announcement": written by staff, for every reader, with or without articles.
    kind: str = "digest"

    @property
    def for_everyone(self) -> bool:
        """Whether every reader gets it, even one whose themes no article is about."""
        return self.kind == "announcement"


@dataclass(frozen=True)
class _ArticleCard:
    """What an article card in the templates shows; every field is plain text or None."""

    title: str
    link: str | None
    date: datetime | None
    themes: tuple[str, ...]
    excerpt: str
    image_url: str | None
    image_alt: str
    # The description of an image that was left out (its host is not ours), else "".
    missing_image_alt: str


@dataclass(frozen=True)
class _EditionHeading:
    number: int
    subject: str
    date: datetime


def web_version_url(settings: Settings, number: int) -> str:
    """Where edition `number` can be read in a browser."""
    return f"{settings.site.base_url}/archive/{number}"


def archive_url(settings: Settings) -> str:
    """The public list of every edition that went out."""
    return f"{settings.site.base_url}/archive"


def signup_url(settings: Settings) -> str:
    """The sign-up form."""
    return f"{settings.site.base_url}/subscribe"


def sample_recipient(settings: Settings) -> RecipientValues:
    """Made-up reader values for previews; the links lead nowhere real."""
    base_url = settings.site.base_url
    return RecipientValues(
        email="voorbeeld@example.org",
        name="Voorbeeld",
        unsubscribe_url=f"{base_url}/unsubscribe/voorbeeld-token",
        preferences_url=f"{base_url}/preferences/voorbeeld-token",
    )


def compose_edition(
    content: EditionContent,
    settings: Settings,
    *,
    environment: jinja2.Environment,
    themes: frozenset[str] | None = None,
) -> ComposedMail | None:
    """Render `content` once for readers of `themes` (None: all articles).

    Returns None when no article belongs to any of `themes`: such readers get no mail
    (an announcement goes to every reader all the same).
    Raises CompositionError when a template is missing, broken or unsafe.
    """
    articles = select_articles(content.articles, settings, themes=themes)
    if not articles and not content.for_everyone:
        return None
    # The markers carry a fresh random nonce, so text from the feed cannot contain one
    # and be mistaken for a slot. They are [a-z0-9-] only, so escaping, MJML and CSS
    # inlining leave them alone, and so does quoted-printable (though its soft line
    # breaks could cut one: split encoded bytes only where lines are not re-wrapped).
    nonce = secrets.token_hex(8)
    markers = slot_markers(nonce)
    html_document, text_document = _render_documents(
        content, articles, settings, environment=environment, themes=themes, recipient=markers
    )
    name_fallback = one_line(
        str(getattr(template_module(environment, STRINGS_TEMPLATE), "name_fallback", ""))
    )
    if not name_fallback:
        raise CompositionError(f"template {STRINGS_TEMPLATE}: name_fallback is not set")
    return ComposedMail(
        subject=one_line(content.subject),
        html=split_at_slots(html_document, markers, nonce, template_name=HTML_TEMPLATE),
        text=split_at_slots(text_document, markers, nonce, template_name=TEXT_TEMPLATE),
        article_count=len(articles),
        themes=themes,
        name_fallback=name_fallback,
    )


def compose_web_version(
    content: EditionContent, settings: Settings, *, environment: jinja2.Environment
) -> str:
    """Edition `content` as one public page: every article, and nothing of any reader.

    The mail's HTML template renders with `web_version` set, under which the greeting
    addresses every reader ("Beste lezer,") and the footer invites to sign up instead
    of showing a reader's address and links. The slot markers are passed as usual, so
    a template that still shows a reader's value (a staff override written before the
    web version existed, say) is refused rather than published.
    Raises CompositionError when a template is missing, broken or unsafe.
    """
    nonce = secrets.token_hex(8)
    markers = slot_markers(nonce)
    context = _template_context(
        content, content.articles, settings, themes=None, recipient=markers, web_version=True
    )
    html_document = _render_html(environment, context, main_element=True)
    shown = [slot for slot, marker in markers.items() if marker in html_document]
    if shown or nonce in html_document.lower():
        what = f"recipient.{shown[0]}" if shown else "a reader's value"
        raise CompositionError(
            f"template {HTML_TEMPLATE}: the web version may not show {what}; "
            "leave recipient.* out when web_version is set"
        )
    return html_document


def select_articles(
    articles: Sequence[ArticleView], settings: Settings, *, themes: frozenset[str] | None
) -> tuple[ArticleView, ...]:
    """The articles for readers of `themes`, in edition order (all of them for None)."""
    if themes is None:
        return tuple(articles)
    return tuple(
        article
        for article in articles
        if themes.intersection(article_themes(article.categories, settings.themes))
    )


def intro_html(
    markdown_source: str, *, base_url: str | None, image_hosts: frozenset[str] | None = None
) -> str:
    """The staff's Markdown introduction as safe HTML; raw HTML in it shows as text.

    With `image_hosts`, an image from any other host is replaced by its description.
    """
    if not markdown_source.strip():
        return ""
    renderer = MarkdownIt("commonmark", {"html": False, "linkify": False})
    return clean_html(renderer.render(markdown_source), base_url=base_url, image_hosts=image_hosts)


def _render_documents(
    content: EditionContent,
    articles: Sequence[ArticleView],
    settings: Settings,
    *,
    environment: jinja2.Environment,
    themes: frozenset[str] | None,
    recipient: Mapping[str, str],
) -> tuple[str, str]:
    """The finished HTML and text with `recipient`'s values rendered in place.

    compose_edition passes slot markers; tests pass real values to check that filling
    the slots gives what rendering them directly would.
    """
    context = _template_context(content, articles, settings, themes=themes, recipient=recipient)
    html_document = _render_html(environment, context)
    text_document = finished_text(render_template(environment, TEXT_TEMPLATE, context))
    return html_document, text_document


def _render_html(
    environment: jinja2.Environment, context: Mapping[str, Any], *, main_element: bool = False
) -> str:
    """The finished HTML document: Jinja, MJML, inlined CSS, and nothing from elsewhere."""
    mjml_source = render_template(environment, HTML_TEMPLATE, context)
    return finished_html(mjml_source, template_name=HTML_TEMPLATE, main_element=main_element)


def _template_context(
    content: EditionContent,
    articles: Sequence[ArticleView],
    settings: Settings,
    *,
    themes: frozenset[str] | None,
    recipient: Mapping[str, str],
    web_version: bool = False,
) -> dict[str, Any]:
    site = settings.site
    chosen = () if themes is None else [slug for slug in settings.themes if slug in themes]
    introduction = intro_html(
        content.intro_markdown, base_url=site.website_url, image_hosts=image_hosts(settings)
    )
    introduction_text = intro_text(introduction)
    return {
        "site": site,
        "contact_address": parseaddr(site.contact_email)[1],
        "contact_phone_uri": tel_uri(site.contact_phone),
        "edition": _EditionHeading(
            number=content.number, subject=one_line(content.subject), date=content.created_at
        ),
        "intro_html": Markup(introduction),  # noqa: S704 - clean_html made it safe
        "intro_text": introduction_text,
        # The staff greet in the introduction themselves: the template's greeting goes.
        "intro_greets": intro_greets(introduction_text),
        "intro_markdown": content.intro_markdown.strip(),
        "articles": [_article_card(article, settings) for article in articles]
        + [_item_card(item) for item in content.items],
        "chosen_themes": theme_names(chosen, settings.themes),
        "recipient": dict(recipient),
        "web_version_url": web_version_url(settings, content.number),
        # The public page of the archive rather than one reader's mail: see
        # compose_web_version.
        "web_version": web_version,
        "archive_url": archive_url(settings),
        "signup_url": signup_url(settings),
    }


def _article_card(article: ArticleView, settings: Settings) -> _ArticleCard:
    words = settings.feed.excerpt_words
    feed_image_url = _http_url(article.image_url)
    image_url = _from_image_host(feed_image_url, settings)
    description = one_line(article.image_alt or "")
    return _ArticleCard(
        title=one_line(article.title),
        link=_http_url(article.link),
        date=article.published_at,
        themes=theme_names(article_themes(article.categories, settings.themes), settings.themes),
        excerpt=excerpt(article.summary_html, words=words)
        or excerpt(article.content_html, words=words),
        image_url=image_url,
        # Without a description the image is decoration: the title beside it says it all.
        image_alt=description if image_url else "",
        missing_image_alt=description if feed_image_url and not image_url else "",
    )


def _item_card(item: ItemView) -> _ArticleCard:
    return _ArticleCard(
        title=one_line(item.title),
        link=_http_url(item.link),
        date=None,
        themes=(),
        excerpt=item.text,
        image_url=None,
        image_alt="",
        missing_image_alt="",
    )


def _http_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL, else None (the mail then omits it)."""
    if not url:
        return None
    candidate = bare(url)
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return candidate


def image_hosts(settings: Settings) -> frozenset[str]:
    """The hosts the mail may load images from: the website's, ours, `[site] image_hosts`."""
    site = settings.site
    named = (urlsplit(site.website_url).hostname, urlsplit(site.base_url).hostname)
    return frozenset(host for host in (*named, *site.image_hosts) if host)


def _from_image_host(url: str | None, settings: Settings) -> str | None:
    """`url` when its host is one the settings name (image_hosts), else None.

    Opening the mail loads its images, so an image from any other host would tell that
    host who read the newsletter and when: exactly the tracking this product refuses.
    The feed names both an article's link and its image, so neither vouches for a host.
    """
    if url is None:
        return None
    return url if urlsplit(url).hostname in image_hosts(settings) else None


def tel_uri(phone: str) -> str:
    """A tel: link for a phone number as people write it ("030 284 3200")."""
    digits = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0"):
        # The site is Dutch: a number with a leading 0 is dialled from abroad as +31.
        digits = "+31" + digits[1:]
    return f"tel:{digits}"
