"""The sign-up mails: golden text parts, and HTML that is Dutch, self-contained and escaped."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.core.config import Settings
from newsletter.mail.mailer import OutgoingMail
from subscribers.mails import SubscriberMails
from tests.support.paths import GOLDEN_DIR

UPDATE_GOLDEN = os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1"
CONFIRM = "http://127.0.0.1:8000/confirm/TOKEN-TOKEN-TOKEN-TOKEN-TOKEN-TOKEN-TOK"
PREFERENCES = "http://127.0.0.1:8000/preferences/PUBLIC-ID-PUBLIC-ID-PU.MAC-MAC-MAC-MAC-MAC-MA"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; rerun with NEWSLETTER_UPDATE_GOLDEN=1 if intended"


@pytest.fixture
def mails(settings: Settings) -> SubscriberMails:
    return SubscriberMails(settings)


def all_three(mails: SubscriberMails) -> list[OutgoingMail]:
    return [
        mails.confirmation("ouder@example.org", confirm_url=CONFIRM, themes=["doe-je-mee"]),
        mails.already_subscribed("ouder@example.org", preferences_url=PREFERENCES),
        mails.address_change("ouder@example.org", confirm_url=CONFIRM),
    ]


def test_text_parts_match_their_golden_files(mails: SubscriberMails) -> None:
    for mail in all_three(mails):
        check_golden(f"{mail.kind}_mail.txt", f"Subject: {mail.subject}\n\n{mail.text}")


def test_the_confirmation_names_every_theme_or_says_all(mails: SubscriberMails) -> None:
    everything = mails.confirmation("x@example.org", confirm_url=CONFIRM, themes=[])
    assert "alle thema's" in everything.text
    three = mails.confirmation(
        "x@example.org",
        confirm_url=CONFIRM,
        themes=["opstarten-beweging", "kampvuurgesprekken", "doe-je-mee"],
    )
    assert "deze thema's: Opstarten beweging, Kampvuurgesprekken en Doe je mee?" in " ".join(
        three.text.split()
    )


def test_html_is_dutch_self_contained_and_links_only_where_it_should(
    mails: SubscriberMails,
) -> None:
    for mail in all_three(mails):
        assert mail.html is not None
        tree = lxml_html.document_fromstring(mail.html)
        assert tree.get("lang") == "nl"
        assert tree.findtext(".//title") == mail.subject
        for tag in ("img", "script", "link", "iframe", "object", "form"):
            assert tree.findall(f".//{tag}") == [], tag
        # One <style>, for dark mode, which loads nothing either (url() is checked below).
        assert "@import" not in mail.html
        links = {element.get("href") for element in tree.iter("a")}
        expected = PREFERENCES if mail.kind == "notice" else CONFIRM
        assert links == {expected, "mailto:rvjeugdzorg@loc.nl"}
        assert "src=" not in mail.html and "url(" not in mail.html


def test_settings_values_are_escaped_in_html_and_plain_in_text(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        site={"name": "Ouders & <jongeren>"},
        themes={"a": {"name": "Zorg & <welzijn>"}},
    )
    mail = SubscriberMails(settings).confirmation(
        "x@example.org", confirm_url=CONFIRM, themes=["a"]
    )
    assert mail.html is not None
    assert "<jongeren>" not in mail.html and "<welzijn>" not in mail.html
    assert "Ouders &amp; &lt;jongeren&gt;" in mail.html
    assert "Zorg &amp; &lt;welzijn&gt;" in mail.html
    assert "Zorg & <welzijn>" in mail.text and "Ouders & <jongeren>" in mail.subject


def test_text_lines_stay_short_except_links(mails: SubscriberMails) -> None:
    for mail in all_three(mails):
        for line in mail.text.splitlines():
            assert len(line) <= 72 or re.fullmatch(r"https?://\S+", line), line


def test_staff_can_override_a_mail_template(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "eigen" / "email"
    folder.mkdir(parents=True)
    (folder / "already_subscribed.subject.txt.j2").write_text("Je staat er al op", encoding="utf-8")
    settings = make_settings(templates={"dir": str(tmp_path / "eigen")})
    mail = SubscriberMails(settings).already_subscribed(
        "x@example.org", preferences_url=PREFERENCES
    )
    assert mail.subject == "Je staat er al op"
