"""Who sends the mail: the sender's postal address in the footer of every mail, when set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import html as lxml_html  # type: ignore[import-untyped,unused-ignore]

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.compose import compose_edition, compose_web_version, sample_recipient
from newsletter.mail.mailer import OutgoingMail
from newsletter.returns.probes import probe_mail
from subscribers.mails import SubscriberMails
from subscribers.models import Subscriber
from tests.support.sample_edition import BASE_URL, seed_edition

ADDRESS = "Postbus 123, 3500 AA Utrecht"
EMAIL = "anouk@example.org"

# Every short mail to subscribers, by name.
SHORT_MAILS: dict[str, Callable[[Settings], OutgoingMail]] = {
    "confirmation": lambda settings: SubscriberMails(settings).confirmation(
        EMAIL, confirm_url=f"{BASE_URL}/confirm/t", themes=[]
    ),
    "address change": lambda settings: SubscriberMails(settings).address_change(
        EMAIL, confirm_url=f"{BASE_URL}/confirm/t"
    ),
    "already subscribed": lambda settings: SubscriberMails(settings).already_subscribed(
        EMAIL, preferences_url=f"{BASE_URL}/preferences/t"
    ),
    "probe": lambda settings: probe_mail(settings, Subscriber(email=EMAIL, public_id="p" * 22)),
}


def with_address(make_settings: Callable[..., Settings], address: str) -> Settings:
    return make_settings(site={"base_url": BASE_URL, "postal_address": address})


def visible(document: str) -> str:
    return " ".join(lxml_html.document_fromstring(document).text_content().split())


def last_lines(text: str, count: int) -> list[str]:
    return text.rstrip("\n").split("\n")[-count:]


def test_the_newsletter_names_the_postal_address_in_its_footer(
    make_settings: Callable[..., Settings],
) -> None:
    settings = with_address(make_settings, ADDRESS)
    environment = template_environment(settings)
    mail = compose_edition(seed_edition(), settings, environment=environment)
    assert mail is not None
    html_document = mail.html_for(sample_recipient(settings))
    footer = visible(html_document).rsplit("Deze nieuwsbrief bevat geen trackingpixels", 1)[1]
    assert ADDRESS in footer
    assert ADDRESS in last_lines(mail.text_for(sample_recipient(settings)), 3)
    web_version = compose_web_version(seed_edition(), settings, environment=environment)
    assert ADDRESS in visible(web_version)


@pytest.mark.parametrize("kind", SHORT_MAILS)
def test_every_short_mail_names_the_postal_address_at_its_end(
    make_settings: Callable[..., Settings], kind: str
) -> None:
    mail = SHORT_MAILS[kind](with_address(make_settings, ADDRESS))
    assert mail.html is not None
    assert ADDRESS in visible(mail.html).rsplit("geen trackingpixels", 1)[1]
    assert any(ADDRESS in line for line in last_lines(mail.text, 2))


def test_without_a_postal_address_nothing_is_shown(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = with_address(make_settings, "")
    mail = compose_edition(seed_edition(), settings, environment=template_environment(settings))
    assert mail is not None
    text = mail.text_for(sample_recipient(settings))
    assert text.endswith("https://www.rvjeugdzorg.nl · rvjeugdzorg@loc.nl · 030 284 3200\n")
    for kind in SHORT_MAILS:
        short = SHORT_MAILS[kind](settings)
        assert short.text.endswith("we delen je gegevens met niemand.\n"), kind
        assert short.html is not None and "Postbus" not in short.html
