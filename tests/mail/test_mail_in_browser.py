"""The short mails to one person (confirmation, address change, already subscribed, probe)
in a real browser: one main landmark, readable in light and dark mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.returns.probes import probe_mail
from subscribers.mails import SubscriberMails
from subscribers.models import Subscriber
from tests.support.browser import CHROMIUM, LANDMARKS_SCRIPT, new_context
from tests.support.sample_edition import BASE_URL

EMAIL = "anouk@example.org"
CONFIRM_URL = f"{BASE_URL}/confirm/bevestig-token"
PREFERENCES_URL = f"{BASE_URL}/preferences/voorkeuren-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]

# Every short mail to subscribers, by name: its HTML as composed from the settings.
MAILS: dict[str, Callable[[Settings], str]] = {
    "confirmation": lambda settings: (
        SubscriberMails(settings)
        .confirmation(EMAIL, confirm_url=CONFIRM_URL, themes=list(settings.themes)[:2])
        .html
    ),
    "address change": lambda settings: (
        SubscriberMails(settings).address_change(EMAIL, confirm_url=CONFIRM_URL).html
    ),
    "already subscribed": lambda settings: (
        SubscriberMails(settings).already_subscribed(EMAIL, preferences_url=PREFERENCES_URL).html
    ),
    "probe": lambda settings: (
        probe_mail(settings, Subscriber(email=EMAIL, public_id="p" * 22)).html
    ),
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(site={"base_url": BASE_URL})


def mail_file(tmp_path: Path, settings: Settings, mail: str) -> Path:
    path = tmp_path / "mail.html"
    path.write_text(MAILS[mail](settings), encoding="utf-8")
    return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = new_context(browser, viewport={"width": 390, "height": 800})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("mail", MAILS)
def test_all_the_text_is_in_one_main_landmark(
    mail: str, page: Any, settings: Settings, tmp_path: Path
) -> None:
    page.goto(mail_file(tmp_path, settings, mail).as_uri())
    found = page.evaluate(LANDMARKS_SCRIPT)
    assert found["mains"] == 1
    assert found["outside"] == []
