"""The mails of the sign-up flow, rendered from templates/email/ (pure: text in, mail out)."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

from newsletter.core.config import Settings
from newsletter.core.templating import render_template, template_environment
from newsletter.core.text import one_line
from newsletter.jobs.cadence import describe_schedule
from newsletter.mail.mailer import OutgoingMail

# OutgoingMail.kind of each mail; the consent log records `<kind>_mail_sent` / `_failed`.
MAIL_KINDS = ("confirmation", "notice", "address_change", "welcome", "leave_link")

_TEMPLATES = {
    "confirmation": "email/confirm_subscription",
    "notice": "email/already_subscribed",
    "address_change": "email/confirm_address_change",
    "welcome": "email/welcome",
    "leave_link": "email/leave_link",
}


class SubscriberMails:
    """Renders the confirmation, already-subscribed and address-change mails.

    None of them carries the person's name: the address has not confirmed it. Only the
    welcome mail does, sent after the person confirmed.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._environment = template_environment(settings)

    def _render(self, kind: str, to: str, values: dict[str, Any]) -> OutgoingMail:
        site = self._settings.site
        context = {
            "site": site,
            "contact_address": parseaddr(site.contact_email)[1],
            **values,
        }
        base = _TEMPLATES[kind]
        subject = one_line(render_template(self._environment, f"{base}.subject.txt.j2", context))
        context["subject"] = subject
        return OutgoingMail(
            to=to,
            subject=subject,
            text=render_template(self._environment, f"{base}.txt.j2", context),
            html=render_template(self._environment, f"{base}.html.j2", context),
            kind=kind,
        )

    def confirmation(self, to: str, *, confirm_url: str, themes: Sequence[str]) -> OutgoingMail:
        """Asks `to` to confirm a subscription to `themes` (slugs; empty means all)."""
        names = [self._settings.themes[slug].name for slug in themes]
        return self._render(
            "confirmation",
            to,
            {
                "confirm_url": confirm_url,
                "confirm_hours": self._settings.subscribers.confirm_hours,
                "themes": names,
            },
        )

    def already_subscribed(self, to: str, *, preferences_url: str) -> OutgoingMail:
        """Tells a confirmed address it is on the list already, with its preferences link."""
        return self._render("notice", to, {"preferences_url": preferences_url})

    def address_change(self, to: str, *, confirm_url: str) -> OutgoingMail:
        """Asks the new address of a subscriber to confirm it."""
        return self._render(
            "address_change",
            to,
            {
                "confirm_url": confirm_url,
                "confirm_hours": self._settings.subscribers.confirm_hours,
            },
        )

    def welcome(
        self,
        to: str,
        *,
        name: str | None,
        themes: Sequence[str],
        preferences_url: str,
        unsubscribe_url: str,
    ) -> OutgoingMail:
        """Welcomes someone who just confirmed: what comes, how often, how to change or leave."""
        base_url = self._settings.site.base_url
        return self._render(
            "welcome",
            to,
            {
                "name": name or "",
                "themes": [self._settings.themes[slug].name for slug in themes],
                "cadence": describe_schedule(self._settings.schedule.cron),
                "archive_url": f"{base_url}/archive",
                "preferences_url": preferences_url,
                "unsubscribe_url": unsubscribe_url,
            },
        )

    def leave_link(self, to: str, *, unsubscribe_url: str) -> OutgoingMail:
        """Gives an address that asked for it its own link to leave the list."""
        return self._render("leave_link", to, {"unsubscribe_url": unsubscribe_url})
