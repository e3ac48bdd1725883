"""Probes: one honest mail to a subscriber whom a bounce named by address only.

An address written in a returned message proves nothing: anybody can send us a report
naming anyone. So such a report ends nobody's subscription. It gets the subscriber a
probe instead, a short mail from the newsletter with its own signed Message-ID (and
VERP address when `[delivery] verp` is on). Only when the probe bounces too, refused by
the SMTP server or returned and tied to it by what we signed, does the subscriber become
`bounced`. A probe that arrives changes nothing. A forged report therefore costs its
target one mail, never their subscription; at most one probe goes out per subscriber
in `[bounces] probe_interval_days`.

    due ──250──> sent ──its bounce comes back──> bounced
     ├──5xx──> bounced            (the subscriber: bounced and suppressed)
     ├──4xx, unreachable──> due   (tried again at the next run)
     └──the subscriber left──> dropped
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, MailRefused
from newsletter.core.models import Base
from newsletter.core.templating import render_template, template_environment
from newsletter.core.text import one_line
from newsletter.mail.identities import PROBE_EDITION, message_id, verp_address
from newsletter.mail.mailer import OutgoingMail, return_path, sender_address
from subscribers.addresses import keyed_hash
from subscribers.bounces import record_hard_bounce
from subscribers.consent import SYSTEM, record_event
from subscribers.models import Subscriber
from subscribers.tokens import unsubscribe_url

PROBE_STATES = ("due", "sent", "bounced", "dropped")
TEMPLATE = "email/probe"


class Probe(Base):
    """One probe of one subscriber, and where it stands."""

    __tablename__ = "probes"
    __table_args__ = (
        CheckConstraint("state IN ('due', 'sent', 'bounced', 'dropped')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(10), default="due")
    # Why it was asked for, without addresses (the report's status and diagnostic).
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(Text)


def request_probe(
    session: Session, settings: Settings, subscriber: Subscriber, *, now: datetime, reason: str
) -> bool:
    """Plan a probe of `subscriber`, unless one was planned within the interval; True
    when this planned one. The consent log records it either way."""
    since = now - timedelta(days=settings.bounces.probe_interval_days)
    recent = session.scalar(
        select(Probe.id)
        .where(Probe.subscriber_id == subscriber.id, Probe.requested_at >= since)
        .limit(1)
    )
    planned = recent is None
    if planned:
        session.add(Probe(subscriber_id=subscriber.id, reason=reason, requested_at=now))
    _log(session, settings, subscriber, "probe_requested", now, reason=reason, planned=planned)
    return planned


def probe_bounced(
    session: Session, settings: Settings, subscriber_id: int, *, now: datetime, reason: str
) -> bool:
    """The probe of `subscriber_id` came back: bounced and suppressed; True when that
    changed their status."""
    probe = session.scalars(
        select(Probe)
        .where(Probe.subscriber_id == subscriber_id, Probe.state == "sent")
        .order_by(Probe.id.desc())
        .limit(1)
    ).first()
    if probe is not None:
        probe.state = "bounced"
        probe.last_reply = reason
    return record_hard_bounce(
        session, subscriber_id, settings=settings, now=now, reply=reason, via="probe"
    )


@dataclass
class ProbeReport:
    """What one pass of sending the due probes did."""

    sent: int = 0
    bounced: int = 0  # refused for good by the SMTP server: the subscriber bounced
    waiting: int = 0  # a temporary refusal, or no server to talk to: the next run tries
    failures: list[str] = field(default_factory=list)


def send_due_probes(
    settings: Settings,
    database: Database,
    *,
    clock: Clock,
    send: Callable[[OutgoingMail], None],
) -> ProbeReport:
    """Send every due probe with `send` (one mail, DeliveryError when it did not go)."""
    report = ProbeReport()
    with database.session() as session:
        due = list(session.scalars(select(Probe.id).where(Probe.state == "due")))
    for probe_id in due:
        with database.session() as session:
            probe = session.get(Probe, probe_id, with_for_update=True)
            if probe is None or probe.state != "due":
                continue  # another run took it meanwhile
            subscriber = session.get(Subscriber, probe.subscriber_id)
            if subscriber is None or subscriber.status != "confirmed":
                probe.state = "dropped"
                continue
            mail = probe_mail(settings, subscriber)
            outcome = _try(send, mail)
            now = clock()
            if outcome is None:
                probe.state, probe.sent_at = "sent", now
                _log(session, settings, subscriber, "probe_sent", now)
                report.sent += 1
            elif isinstance(outcome, MailRefused) and outcome.permanent:
                reason = str(outcome).replace(subscriber.email, "(address)")
                probe.state, probe.last_reply = "bounced", reason
                record_hard_bounce(
                    session, subscriber.id, settings=settings, now=now, reply=reason, via="probe"
                )
                report.bounced += 1
            else:
                probe.last_reply = str(outcome).replace(subscriber.email, "(address)")
                report.waiting += 1
                report.failures.append(probe.last_reply)
    return report


def _try(send: Callable[[OutgoingMail], None], mail: OutgoingMail) -> DeliveryError | None:
    try:
        send(mail)
    except DeliveryError as exc:
        return exc
    return None


def probe_mail(settings: Settings, subscriber: Subscriber) -> OutgoingMail:
    """The probe to `subscriber`, from the newsletter, with its own signed identities."""
    secret = settings.require_secret_key()
    domain = sender_address(settings).rpartition("@")[2]
    envelope = return_path(settings)
    if settings.delivery.verp:
        envelope = verp_address(
            secret, return_path=envelope, edition=PROBE_EDITION, public_id=subscriber.public_id
        )
    site = settings.site
    context = {
        "site": site,
        "contact_address": parseaddr(site.contact_email)[1],
        "unsubscribe_url": unsubscribe_url(settings, subscriber.public_id),
    }
    environment = template_environment(settings)
    subject = one_line(render_template(environment, f"{TEMPLATE}.subject.txt.j2", context))
    context["subject"] = subject
    return OutgoingMail(
        to=subscriber.email,
        subject=subject,
        text=render_template(environment, f"{TEMPLATE}.txt.j2", context),
        html=render_template(environment, f"{TEMPLATE}.html.j2", context),
        kind="probe",
        message_id=message_id(
            secret, edition=PROBE_EDITION, public_id=subscriber.public_id, domain=domain
        ),
        envelope_from=envelope,
    )


def _log(
    session: Session,
    settings: Settings,
    subscriber: Subscriber,
    event: str,
    now: datetime,
    **details: object,
) -> None:
    record_event(
        session,
        settings=settings,
        now=now,
        event=event,
        subject_hash=keyed_hash(subscriber.email_key, settings.require_secret_key()),
        requester=SYSTEM,
        subscriber_id=subscriber.id,
        details=dict(details) or None,
    )
