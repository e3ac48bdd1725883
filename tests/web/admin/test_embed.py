"""The staff page with the sign-up form to paste on the movement's own website."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from newsletter.staff.accounts import add_user
from tests.support.clock import FixedClock
from tests.support.paths import ROOT
from tests.support.webharness import (
    STAFF_NAME,
    STAFF_PASSWORD,
    WebHarness,
    log_in,
    web_harness,
)

WEBSITE = "https://www.rvjeugdzorg.nl"


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock) as harness:
        with harness.database.session() as session:
            add_user(session, STAFF_NAME, STAFF_PASSWORD, email="redactie@example.org", now=clock())
        yield harness


class FormParts(HTMLParser):
    """The tags of a piece of HTML, each with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def snippet_on(page: str) -> str:
    found = re.search(r"<textarea[^>]*readonly[^>]*>(.*?)</textarea>", page, flags=re.DOTALL)
    assert found, "no read-only text box with the snippet"
    return html.unescape(found.group(1))


def parts_of(snippet: str) -> FormParts:
    parser = FormParts()
    parser.feed(snippet)
    return parser


def test_the_page_needs_a_login(web: WebHarness) -> None:
    response = web.client().get("/admin/embed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/embed"


def test_the_navigation_leads_there(staff: TestClient) -> None:
    assert '<a href="/admin/embed">' in staff.get("/admin").text


def test_the_page_shows_the_form_to_copy(web: WebHarness, staff: TestClient) -> None:
    response = staff.get("/admin/embed")
    assert response.status_code == 200
    assert "<h1>Aanmeldformulier op je eigen website</h1>" in response.text
    snippet = snippet_on(response.text)
    assert snippet.startswith('<form method="post" action="http://testserver/embed/subscribe"')
    parts = parts_of(snippet)
    names = {attrs["name"] for attrs in parts.all("input")}
    assert names == {"email", "name", "themes", "opmerking"}
    themes = [attrs["value"] for attrs in parts.all("input") if attrs["name"] == "themes"]
    assert themes == list(web.settings.themes)
    for slug, theme in web.settings.themes.items():
        assert f'<label for="nieuwsbrief-theme-{slug}">{theme.name}</label>' in snippet
    # Every field has its label.
    ids = {attrs["id"] for attrs in parts.all("input")}
    assert {attrs["for"] for attrs in parts.all("label")} == ids
    assert [attrs["type"] for attrs in parts.all("button")] == ["submit"]


def test_the_form_loads_and_runs_nothing(staff: TestClient) -> None:
    snippet = snippet_on(staff.get("/admin/embed").text)
    parts = parts_of(snippet)
    assert {tag for tag, _ in parts.tags} <= {
        "form",
        "p",
        "label",
        "br",
        "input",
        "fieldset",
        "legend",
        "div",
        "a",
        "button",
    }
    assert not any(name.startswith("on") for _, attrs in parts.tags for name in attrs)
    assert not any("src" in attrs or "class" in attrs for _, attrs in parts.tags)
    # The one style hides the honeypot, which must not be filled in or reached by Tab.
    [styled] = [attrs for _, attrs in parts.tags if "style" in attrs]
    assert styled["aria-hidden"] == "true"
    [honeypot] = [attrs for attrs in parts.all("input") if attrs["name"] == "opmerking"]
    assert honeypot["tabindex"] == "-1"


def test_the_form_shows_the_consent_text_the_log_records(
    web: WebHarness, staff: TestClient
) -> None:
    snippet = snippet_on(staff.get("/admin/embed").text)
    page = web.client().get("/subscribe").text
    shown = page.split('<p class="consent">', 1)[1].split("</p>", 1)[0]
    assert f"<p>{html.unescape(shown)} " in snippet


def test_without_embed_origins_the_page_says_how_to_allow_the_website(
    staff: TestClient,
) -> None:
    page = html.unescape(staff.get("/admin/embed").text)
    assert "Nog geen enkele andere website" in page
    assert f'embed_origins = ["{WEBSITE}"]' in page


def test_the_page_lists_the_websites_allowed(
    make_settings: Callable[..., Settings], clock: FixedClock
) -> None:
    allowed = ["https://www.rvjeugdzorg.nl", "https://loc.nl"]
    with web_harness(make_settings, clock, web={"embed_origins": allowed}) as web:
        with web.database.session() as session:
            add_user(session, STAFF_NAME, STAFF_PASSWORD, email="redactie@example.org", now=clock())
        client = web.client()
        assert log_in(client).status_code == 303
        page = html.unescape(client.get("/admin/embed").text)
    assert "<li><code>https://www.rvjeugdzorg.nl</code></li>" in page
    assert "<li><code>https://loc.nl</code></li>" in page
    assert 'embed_origins = ["https://www.rvjeugdzorg.nl", "https://loc.nl"]' in page


def test_the_readme_shows_the_form_too() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Sign-up form on your own website", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```html\n", 1)[1].split("```", 1)[0]
    assert snippet.startswith(
        '<form method="post" action="https://nieuwsbrief.rvjeugdzorg.nl/embed/subscribe"'
    )
    names = {attrs["name"] for attrs in parts_of(snippet).all("input")}
    assert names == {"email", "name", "themes", "opmerking"}
    assert "<script" not in snippet
    assert "embed_origins" in section
