"""The job's mails to staff: a draft waits for review, or a run failed."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from newsletter.core.config import Settings
from newsletter.core.templating import render_template, template_environment
from newsletter.core.text import one_line
from newsletter.jobs.report import RunReport
from newsletter.mail.mailer import OutgoingMail


def review_url(settings: Settings, number: int) -> str:
    """Where staff review draft `number` in the admin pages."""
    return f"{settings.site.base_url}/admin/editions/{number}"


def _staff_mail(settings: Settings, name: str, to: str, values: dict[str, Any]) -> OutgoingMail:
    environment = template_environment(settings)
    context = {"site": settings.site, **values}
    subject = one_line(render_template(environment, f"email/{name}.subject.txt.j2", context))
    text = render_template(environment, f"email/{name}.txt.j2", context)
    return OutgoingMail(to=to, subject=subject, text=text, kind="staff")


def draft_ready_mail(
    settings: Settings, to: str, *, number: int, subject: str, articles: int
) -> OutgoingMail:
    """Tells staff that draft `number` waits for review, with the link to it."""
    values = {
        "number": number,
        "subject": subject,
        "articles": articles,
        "review_url": review_url(settings, number),
    }
    return _staff_mail(settings, "draft_ready", to, values)


def run_failed_mail(settings: Settings, to: str, report: RunReport) -> OutgoingMail:
    """Tells staff that a run failed, with each failing step's error."""
    values = {
        "run_id": report.run_id,
        "started": report.started_at.astimezone(ZoneInfo(settings.site.timezone)),
        "trigger": report.trigger,
        "errors": list(report.errors),
        "summary": report.summary,
    }
    return _staff_mail(settings, "run_failed", to, values)
