"""Screenshots for the docs: an edition as a reader sees it (desktop, phone, phone in dark
mode), the welcome mail and the sign-up page at phone width, and the staff pages (the
dashboard with its chart, a person's page, the import preview) at desktop and phone width."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_HTML = REPOSITORY / "tests" / "golden" / "edition.html"
DEFAULT_OUT_DIR = REPOSITORY / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Quiet flags: the browser itself should not phone home while it takes the pictures.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass(frozen=True)
class Screen:
    file_name: str
    width: int
    height: int
    scale: float
    color_scheme: str = "light"


PHONE = {"width": 390, "height": 844, "scale": 2.0}
SCREENS = (
    Screen("edition-desktop.png", width=1200, height=900, scale=1),
    Screen("edition-phone.png", **PHONE),  # type: ignore[arg-type]
    Screen("edition-phone-dark.png", **PHONE, color_scheme="dark"),  # type: ignore[arg-type]
)
WELCOME = Screen("welcome-phone.png", **PHONE)  # type: ignore[arg-type]
SIGNUP = Screen("subscribe-phone.png", **PHONE)  # type: ignore[arg-type]
STAFF_PAGES = ("dashboard", "person", "import-preview")
STAFF_SCREENS = (("desktop", 1280, 900, 1.0), ("phone", 390, 844, 2.0))
# A sample list for the staff pages: who signed up, and how many weeks ago.
SAMPLE_PEOPLE = [(f"lezer{n}@example.org", f"Lezer {n}", 50 - n) for n in range(0, 48, 3)]
SAMPLE_CSV = (
    "\ufeffe-mail;naam;thema's\r\n"
    "anouk@example.org;Anouk de Vries;Kampvuurgesprekken\r\n"
    "bram@example.net;Bram;\r\n"
    "lezer3@example.org;Lezer 3;\r\n"
    "geen-adres;Carla;\r\n"
).encode("utf-8")


def take_screenshots(html_path: Path, out_dir: Path, *, chromium: Path = CHROMIUM) -> list[Path]:
    """Full-page PNGs of the edition at `html_path` for every screen in SCREENS, of the
    welcome mail and of the sign-up page, written to `out_dir`.

    Requests for anything but the page itself are refused, as a careful mail client
    would refuse them; article images then show their alt text.
    """
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    pages = [(screen, html_path.read_text(encoding="utf-8")) for screen in SCREENS]
    pages += [(WELCOME, welcome_mail_html()), (SIGNUP, sign_up_page_html())]
    for name, html in staff_pages_html().items():
        for label, width, height, scale in STAFF_SCREENS:
            pages.append((Screen(f"admin-{name}-{label}.png", width, height, scale), html))
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            for screen, html in pages:
                written.append(_shoot(browser, screen, html, out_dir / screen.file_name))
        finally:
            browser.close()
    return written


def _shoot(browser: Any, screen: Screen, html: str, target: Path) -> Path:
    context = browser.new_context(
        viewport={"width": screen.width, "height": screen.height},
        device_scale_factor=screen.scale,
        color_scheme=screen.color_scheme,
        java_script_enabled=False,
    )
    page = context.new_page()
    page.route("**/*", lambda route: route.abort())
    page.set_content(html)
    page.screenshot(path=str(target), full_page=True)
    context.close()
    return target


def _example_settings(folder: Path) -> Any:
    from newsletter.core.config import settings_from_mapping

    return settings_from_mapping(
        {"site": {"base_url": "https://nieuwsbrief.rvjeugdzorg.nl"}},
        base_dir=folder,
        env={"NEWSLETTER_SECRET_KEY": "screenshots-only-0123456789abcdef"},
    )


def staff_pages_html() -> dict[str, str]:
    """The dashboard, one person's page and an import preview, as a logged-in staff
    member gets them from the app, with their stylesheets put inline."""
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from newsletter.core.db import open_database
    from newsletter.staff.accounts import add_user
    from newsletter.web.app import create_app
    from subscribers.consent import Requester
    from subscribers.management import ListManagement

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        settings = _example_settings(Path(folder))
        database = open_database(f"sqlite:///{folder}/staff.db")
        try:
            with database.session() as session:
                add_user(session, "redactie", "een lang genoeg wachtwoord", email=None, now=now)
            for email, name, weeks in SAMPLE_PEOPLE:
                ListManagement(settings, database, clock=_at(now - timedelta(weeks=weeks))).add(
                    email,
                    name=name,
                    themes=[],
                    requester=Requester(source="cli"),
                    confirmed=True,
                    consent_note="papieren lijst actiedag",
                )
            app = create_app(settings, database, clock=lambda: now, send=lambda mail: None)
            # The site's own address: its cookies are for https only.
            with TestClient(app, base_url=settings.site.base_url) as client:
                return _staff_pages(client)
        finally:
            database.dispose()


def _at(moment: Any) -> Any:
    """A clock that stands still at `moment`."""
    return lambda: moment


def _staff_pages(client: Any) -> dict[str, str]:
    login = client.get("/admin/login").text
    client.post(
        "/admin/login",
        data={
            "csrf_token": _csrf(login),
            "name": "redactie",
            "password": "een lang genoeg wachtwoord",
            "next": "/admin",
        },
    )
    dashboard = client.get("/admin").text
    listing = client.get("/admin/subscribers?q=lezer0").text
    person = re.search(r'href="(/admin/subscribers/[A-Za-z0-9_-]{22})"', listing)
    assert person, "no person on the subscriber list"
    upload = client.get("/admin/subscribers/import").text
    preview = client.post(
        "/admin/subscribers/import",
        data={"csrf_token": _csrf(upload)},
        files={"file": ("actiedag.csv", SAMPLE_CSV, "text/csv")},
    ).text
    pages = {"dashboard": dashboard, "person": client.get(person.group(1)).text}
    pages["import-preview"] = preview
    return {name: _inline_styles(client, html) for name, html in pages.items()}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _inline_styles(client: Any, html: str) -> str:
    """The page with each of its stylesheets put inline (the screenshot loads nothing)."""
    for link in re.findall(r'<link rel="stylesheet" href="([^"]+)">', html):
        css = client.get(link).text
        html = html.replace(f'<link rel="stylesheet" href="{link}">', f"<style>{css}</style>")
    return html


def welcome_mail_html() -> str:
    """The welcome mail of someone who chose one theme, as composed."""
    from subscribers.mails import SubscriberMails

    with tempfile.TemporaryDirectory() as folder:
        settings = _example_settings(Path(folder))
        base = settings.site.base_url
        return (
            SubscriberMails(settings)
            .welcome(
                "anouk@example.org",
                name="Anouk",
                themes=["kampvuurgesprekken"],
                preferences_url=f"{base}/preferences/voorbeeld",
                unsubscribe_url=f"{base}/unsubscribe/voorbeeld",
            )
            .html
            or ""
        )


def sign_up_page_html() -> str:
    """The sign-up page as the app serves it, with its stylesheet put inline (the
    screenshot loads nothing from anywhere)."""
    from fastapi.testclient import TestClient

    from newsletter.core.clock import utc_now
    from newsletter.core.db import open_database
    from newsletter.web.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        settings = _example_settings(Path(folder))
        database = open_database(f"sqlite:///{folder}/screens.db")
        try:
            app = create_app(settings, database, clock=utc_now, send=lambda mail: None)
            with TestClient(app) as client:
                page = client.get("/subscribe").text
                return _inline_styles(client, page)
        finally:
            database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--html", type=Path, default=DEFAULT_HTML, help=f"edition HTML (default {DEFAULT_HTML})"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"folder for the PNGs (default {DEFAULT_OUT_DIR})",
    )
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the browser to use")
    arguments = parser.parse_args(argv)
    if not arguments.html.is_file():
        print(f"error: no such file: {arguments.html}", file=sys.stderr)
        return 2
    if not arguments.chromium.exists():
        print(f"error: {arguments.chromium} not found (run `make browser`)", file=sys.stderr)
        return 2
    for path in take_screenshots(arguments.html, arguments.out_dir, chromium=arguments.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
