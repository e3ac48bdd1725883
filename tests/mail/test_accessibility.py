"""axe-core over every mail a subscriber gets, as composed for them, at phone and desktop
width: no violation of impact critical or serious.

Each mail's HTML part is loaded with `page.set_content`, in a context that bypasses CSP
(for axe) and refuses every request (a mail loads nothing; an image shows its alt text).
Moderate violations are allowed in a mail, whose table layout has no landmarks, but are
named in the test's output (`-rA`) so that they stay in sight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.compose import compose_edition
from newsletter.editions.personalized import RecipientValues
from newsletter.returns.probes import probe_mail
from subscribers.mails import SubscriberMails
from subscribers.models import Subscriber
from tests.support.axe import AXE_MISSING, AXE_SCRIPT, at_least, report, run_axe
from tests.support.browser import CHROMIUM, new_context
from tests.support.sample_edition import BASE_URL, seed_articles, seed_edition

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
EMAIL = "anouk@example.org"
CONFIRM_URL = f"{BASE_URL}/confirm/bevestig-token"
PREFERENCES_URL = f"{BASE_URL}/preferences/voorkeuren-token"
LANDMARK_RULES = ("landmark-one-main", "region")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
    pytest.mark.skipif(not AXE_SCRIPT.exists(), reason=AXE_MISSING),
]


def newsletter(settings: Settings) -> str:
    """The seed edition, its first article with a picture, for a subscriber with a name."""
    first, *others = seed_articles()
    pictured = replace(first, image_url=f"{BASE_URL}/beeld.jpg", image_alt="Ouders in gesprek")
    edition = seed_edition(articles=(pictured, *others))
    mail = compose_edition(edition, settings, environment=template_environment(settings))
    assert mail is not None
    return mail.html_for(
        RecipientValues(
            email=EMAIL,
            name="Anouk",
            unsubscribe_url=f"{BASE_URL}/unsubscribe/afmeld-token",
            preferences_url=PREFERENCES_URL,
        )
    )


def probe(settings: Settings) -> str:
    return probe_mail(settings, Subscriber(email=EMAIL, public_id="p" * 22)).html


# Every mail to subscribers, by name: its HTML as composed from the settings. A new mail
# is one more line here.
MAILS: dict[str, Callable[[Settings], str]] = {
    "newsletter": newsletter,
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
    "probe": probe,
    "welcome": lambda settings: (
        SubscriberMails(settings)
        .welcome(
            EMAIL,
            name="Anouk",
            themes=["doe-je-mee"],
            preferences_url=PREFERENCES_URL,
            unsubscribe_url=PREFERENCES_URL.replace("preferences", "unsubscribe"),
        )
        .html
    ),
    "link to leave": lambda settings: (
        SubscriberMails(settings)
        .leave_link(EMAIL, unsubscribe_url=PREFERENCES_URL.replace("preferences", "unsubscribe"))
        .html
    ),
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(site={"base_url": BASE_URL})


@pytest.fixture(params=list(WIDTHS))
def mail_page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    """A page at phone or desktop width that loads nothing from anywhere."""
    context = new_context(browser, viewport=WIDTHS[request.param], bypass_csp=True)
    context.route("**/*", lambda route: route.abort())
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("mail", MAILS)
def test_no_serious_accessibility_problem_in_a_mail(
    mail: str, mail_page: Any, settings: Settings
) -> None:
    mail_page.set_content(MAILS[mail](settings))
    found = run_axe(mail_page, where=mail)
    failing = at_least("serious", found)
    assert not failing, report(failing)
    if found:
        print(report(found))  # the moderate and minor ones, for -rA


@pytest.mark.parametrize("mail", MAILS)
def test_a_mail_has_a_main_landmark(mail: str, mail_page: Any, settings: Settings) -> None:
    mail_page.set_content(MAILS[mail](settings))
    found = run_axe(mail_page, where=mail)
    known = [violation for violation in found if violation.rule in LANDMARK_RULES]
    assert not known, report(known)
