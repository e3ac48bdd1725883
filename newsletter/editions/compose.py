"""Compose an edition into finished HTML and text mail, split where each reader differs."""

from __future__ import annotations

import html
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup
from mjml import mjml2html
from premailer import Premailer

from newsletter.content.sanitize import clean_html, excerpt
from newsletter.content.themes import article_themes, theme_names
from newsletter.core.config import Settings
from newsletter.core.errors import CompositionError
from newsletter.core.templating import render_template, template_module
from newsletter.core.text import bare, one_line

HTML_TEMPLATE = "email/newsletter.mjml.j2"
TEXT_TEMPLATE = "email/newsletter.txt.j2"
STRINGS_TEMPLATE = "email/strings.j2"

# The per-reader values, in the names Personalizable.slots and fill() use.
SLOT_NAMES = ("name", "email", "unsubscribe_url", "preferences_url")
# A name longer than this is cut: it keeps text lines far below the 998-octet limit.
NAME_MAX_CHARS = 100
# RFC 5322: no line of a message may exceed 998 octets (plus CRLF).
MAX_LINE_OCTETS = 998

_EXTERNAL_RESOURCE_TAGS = ("link", "script", "iframe", "object", "embed", "base", "frame")


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
class EditionContent:
    """What one edition says, the same for every reader."""

    number: int
    subject: str
    intro_markdown: str
    created_at: datetime
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True)
class RecipientValues:
    """What differs per reader, as plain (unescaped) text."""

    email: str
    name: str | None
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True)
class Personalizable:
    """A finished document cut at its per-reader slots: parts[0] slot[0] parts[1] ..."""

    parts: tuple[str, ...]
    slots: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.slots) + 1:
            raise ValueError("a Personalizable needs exactly one more part than slots")

    def fill(self, values: Mapping[str, str]) -> str:
        """The document with each slot replaced by `values[slot]`, which must be escaped
        for its context already (see ComposedMail.html_values and text_values)."""
        # Per reader this is only a join: Jinja, MJML and premailer ran once per edition
        # and theme set, so a send to 100,000 readers does no rendering at all.
        pieces = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            pieces.append(values[slot])
            pieces.append(part)
        return "".join(pieces)


def html_escaped(text_values: Mapping[str, str]) -> dict[str, str]:
    """The HTML part's slot values from the text part's: the same, escaped for text and
    attribute values."""
    return {slot: html.escape(value, quote=True) for slot, value in text_values.items()}


@dataclass(frozen=True)
class ComposedMail:
    """An edition rendered for one set of themes, ready to be filled in per reader."""

    subject: str
    html: Personalizable
    text: Personalizable
    article_count: int
    themes: frozenset[str] | None
    # Shown where a reader's name is unknown; it comes from email/strings.j2.
    name_fallback: str

    def html_values(self, recipient: RecipientValues) -> dict[str, str]:
        """The slot values for the HTML part, escaped for text and attribute values."""
        return html_escaped(self.text_values(recipient))

    def text_values(self, recipient: RecipientValues) -> dict[str, str]:
        """The slot values for the text part: single lines without control characters."""
        return {
            "name": _display_name(recipient.name, self.name_fallback),
            "email": one_line(recipient.email),
            "unsubscribe_url": bare(recipient.unsubscribe_url),
            "preferences_url": bare(recipient.preferences_url),
        }

    def html_for(self, recipient: RecipientValues) -> str:
        return self.html.fill(self.html_values(recipient))

    def text_for(self, recipient: RecipientValues) -> str:
        return self.text.fill(self.text_values(recipient))


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

    Returns None when no article belongs to any of `themes`: such readers get no mail.
    Raises CompositionError when a template is missing, broken or unsafe.
    """
    articles = select_articles(content.articles, settings, themes=themes)
    if not articles:
        return None
    # The markers carry a fresh random nonce, so text from the feed cannot contain one
    # and be mistaken for a slot. They are [a-z0-9-] only, so escaping, MJML and CSS
    # inlining leave them alone, and so does quoted-printable (though its soft line
    # breaks could cut one: split encoded bytes only where lines are not re-wrapped).
    nonce = secrets.token_hex(8)
    markers = _slot_markers(nonce)
    html_document, text_document = _render_documents(
        content, articles, settings, environment=environment, themes=themes, recipient=markers
    )
    marker_pattern = re.compile(
        "(" + "|".join(re.escape(marker) for marker in markers.values()) + ")"
    )
    slot_of_marker = {marker: slot for slot, marker in markers.items()}
    name_fallback = one_line(
        str(getattr(template_module(environment, STRINGS_TEMPLATE), "name_fallback", ""))
    )
    if not name_fallback:
        raise CompositionError(f"template {STRINGS_TEMPLATE}: name_fallback is not set")
    return ComposedMail(
        subject=one_line(content.subject),
        html=_split_at_slots(html_document, marker_pattern, slot_of_marker, nonce, HTML_TEMPLATE),
        text=_split_at_slots(text_document, marker_pattern, slot_of_marker, nonce, TEXT_TEMPLATE),
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
    markers = _slot_markers(nonce)
    context = _template_context(
        content, content.articles, settings, themes=None, recipient=markers, web_version=True
    )
    html_document = _render_html(environment, context)
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


def intro_html(markdown_source: str, *, base_url: str | None) -> str:
    """The staff's Markdown introduction as safe HTML; raw HTML in it shows as text."""
    if not markdown_source.strip():
        return ""
    renderer = MarkdownIt("commonmark", {"html": False, "linkify": False})
    return clean_html(renderer.render(markdown_source), base_url=base_url)


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
    text_document = _tidy_text(render_template(environment, TEXT_TEMPLATE, context))
    return html_document, text_document


def _slot_markers(nonce: str) -> dict[str, str]:
    return {slot: f"slot-{nonce}-{slot.replace('_', '-')}" for slot in SLOT_NAMES}


def _render_html(environment: jinja2.Environment, context: Mapping[str, Any]) -> str:
    """The finished HTML document: Jinja, MJML, inlined CSS, and nothing from elsewhere."""
    mjml_source = render_template(environment, HTML_TEMPLATE, context)
    html_document = _break_lines(_inline_css(_mjml_to_html(mjml_source)))
    _refuse_external_resources(html_document)
    return html_document


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
    introduction = intro_html(content.intro_markdown, base_url=site.website_url)
    return {
        "site": site,
        "contact_address": parseaddr(site.contact_email)[1],
        "contact_phone_uri": _tel_uri(site.contact_phone),
        "edition": _EditionHeading(
            number=content.number, subject=one_line(content.subject), date=content.created_at
        ),
        "intro_html": Markup(introduction),  # noqa: S704 - clean_html made it safe
        "intro_markdown": content.intro_markdown.strip(),
        "articles": [_article_card(article, settings) for article in articles],
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
    image_url = _first_party(_http_url(article.image_url), article, settings)
    return _ArticleCard(
        title=one_line(article.title),
        link=_http_url(article.link),
        date=article.published_at,
        themes=theme_names(article_themes(article.categories, settings.themes), settings.themes),
        excerpt=excerpt(article.summary_html, words=words)
        or excerpt(article.content_html, words=words),
        image_url=image_url,
        # Without a description the image is decoration: the title beside it says it all.
        image_alt=one_line(article.image_alt or "") if image_url else "",
    )


def _mjml_to_html(mjml_source: str) -> str:
    try:
        # fonts={} stops MJML from adding its default Google Fonts links.
        return mjml2html(mjml_source, fonts={}, disable_comments=True)
    except Exception as exc:  # mrml raises plain exceptions for invalid MJML
        message = " ".join(str(exc).split())
        raise CompositionError(f"template {HTML_TEMPLATE}: invalid MJML: {message}") from exc


def _inline_css(html_document: str) -> str:
    """Copy the remaining <style> rules onto the elements, for clients that drop <style>."""
    inliner = Premailer(
        html_document,
        keep_style_tags=True,  # media queries for phones only work from a <style> block
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        disable_link_rewrites=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    inlined = str(inliner.transform(pretty_print=False))
    # premailer keeps a doctype only when it is spelled as lxml spells it ("<!DOCTYPE");
    # without one, browsers and webmail render the mail in quirks mode.
    if not inlined.lstrip()[:9].lower().startswith("<!doctype"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined


# Block tags, where a line break changes nothing a reader sees: tables ignore it, space
# at a block's edge collapses, and MJML sets font-size 0 around its columns.
_BLOCK_TAG_START = re.compile(
    r"(?<=>)(?=<(?:/?(?:table|tbody|tr|td|div|head|body)\b|(?:p|h[1-6]|ul|ol|li)\b|!--\[if))"
)


# A space before a link, outside <pre> (which mails never have): a newline there reads
# the same, and puts each link (often holding a per-reader URL) on a line of its own.
_SPACE_BEFORE_LINK = re.compile(r" (?=<a\s)")


def _break_lines(html_document: str) -> str:
    """Start block tags and links on new lines: reviewable golden files, and lines that
    stay far below the 998-octet limit once per-reader values are filled in."""
    return _SPACE_BEFORE_LINK.sub("\n", _BLOCK_TAG_START.sub("\n", html_document))


class _ResourceFinder(HTMLParser):
    """Notes the tags and the CSS of a document, to find anything that loads from elsewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data.lower())


def _refuse_external_resources(html_document: str) -> None:
    """Fail rather than send a mail that would load anything from elsewhere."""
    finder = _ResourceFinder()
    finder.feed(html_document)
    finder.close()
    for tag in _EXTERNAL_RESOURCE_TAGS:
        if tag in finder.tags:
            raise CompositionError(f"template {HTML_TEMPLATE}: the mail may not contain <{tag}>")
    if any("@import" in css or "url(" in css for css in finder.css):
        raise CompositionError(
            f"template {HTML_TEMPLATE}: styles may not load anything (@import, url())"
        )


def _tidy_text(text: str) -> str:
    """One newline style, no trailing blanks, and no line over the 998-octet limit."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.extend(_limit_octets(line.rstrip()))
    return "\n".join(lines).strip("\n") + "\n"


def _limit_octets(line: str) -> list[str]:
    """`line` cut into pieces of at most MAX_LINE_OCTETS UTF-8 octets (normally itself)."""
    pieces: list[str] = []
    while len(line.encode("utf-8")) > MAX_LINE_OCTETS:
        cut = MAX_LINE_OCTETS
        while len(line[:cut].encode("utf-8")) > MAX_LINE_OCTETS:
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def _split_at_slots(
    document: str,
    marker_pattern: re.Pattern[str],
    slot_of_marker: Mapping[str, str],
    nonce: str,
    template_name: str,
) -> Personalizable:
    # Splitting here, once per composition, is what makes per-reader work a plain join
    # in Personalizable.fill.
    pieces = marker_pattern.split(document)
    parts = tuple(pieces[0::2])
    slots = tuple(slot_of_marker[marker] for marker in pieces[1::2])
    # A leftover nonce (in any case) means a filter such as |upper altered a marker.
    if any(nonce in part.lower() for part in parts):
        raise CompositionError(
            f"template {template_name}: a reader's value was changed by a filter; "
            "use recipient.* as it is"
        )
    if "unsubscribe_url" not in slots:
        raise CompositionError(
            f"template {template_name}: the mail must contain recipient.unsubscribe_url"
        )
    return Personalizable(parts=parts, slots=slots)


def _display_name(name: str | None, fallback: str) -> str:
    cleaned = one_line(name or "")[:NAME_MAX_CHARS].strip()
    return cleaned or fallback


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


def _first_party(url: str | None, article: ArticleView, settings: Settings) -> str | None:
    """`url` when its host is the site's own (the article's, the website's or ours).

    Opening the mail loads its images, so an image from any other host would tell that
    host who read the newsletter and when: exactly the tracking this product refuses.
    """
    if url is None:
        return None
    own_hosts = {
        urlsplit(candidate).hostname
        for candidate in (article.link, settings.site.website_url, settings.site.base_url)
        if candidate
    }
    return url if urlsplit(url).hostname in own_hosts else None


def _tel_uri(phone: str) -> str:
    """A tel: link for a phone number as people write it ("030 284 3200")."""
    digits = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0"):
        # The site is Dutch: a number with a leading 0 is dialled from abroad as +31.
        digits = "+31" + digits[1:]
    return f"tel:{digits}"
