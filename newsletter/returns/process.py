"""The return mailbox, processed: each new message classified, acted on once, and filed.

    mailbox ──new message──> classify (returns/classify.py: pure) ──> act, in one transaction:
        the subscriber's state and consent log (subscribers/bounces.py), and the
        message's key in `return_messages` ──> file it: handled, or set aside for a
        person when not understood (a mailbox never deletes anything)

A message whose key is in `return_messages` was acted on before (by a run that stopped
before filing it, or by another run at the same moment): it is filed and counted as
already handled, never acted on twice. Messages not understood change nothing, so they
are not remembered: filed aside, and read again only if someone puts them back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.models import Base
from newsletter.delivery.outbox import OutboxRow
from newsletter.mail.identities import PROBE_EDITION, message_id_matches
from newsletter.mail.mailer import OutgoingMail
from newsletter.returns.classify import DecisionKind, ReturnDecision, classify_return_message
from newsletter.returns.mailboxes import ReturnMailbox
from newsletter.returns.probes import Probe, probe_bounced, request_probe, send_due_probes
from subscribers.addresses import address_key
from subscribers.bounces import (
    record_complaint,
    record_hard_bounce,
    record_soft_bounce,
    record_unsubscribe_by_mail,
)
from subscribers.models import Subscriber
from subscribers.records import find_by_key, find_by_public_id

Outcome = DecisionKind | Literal["already_handled", "probed"]


class ReturnMessage(Base):
    """A message from the return mailbox that was acted on, by its key (classify.message_key)."""

    __tablename__ = "return_messages"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    handled_at: Mapped[datetime]


@dataclass
class BounceReport:
    """What one pass over the return mailbox did."""

    messages: int = 0
    permanent: int = 0
    probed: int = 0  # bounces naming a subscriber by address only: a probe asked for
    temporary: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    not_understood: int = 0
    already_handled: int = 0
    suppressed: int = 0  # subscribers this pass bounced, marked complained or unsubscribed
    probes_sent: int = 0  # probes that went out in this pass (asked for now or before)
    probes_refused: int = 0  # refused for good by the SMTP server: their subscriber bounced
    probes_waiting: int = 0  # to be tried again at the next pass
    # Why messages were not understood, and how many for each reason.
    reasons: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_REPORT_FIELD: dict[Outcome, str] = {
    "permanent": "permanent",
    "temporary": "temporary",
    "complaint": "complaints",
    "unsubscribe": "unsubscribes",
    "unknown": "not_understood",
    "already_handled": "already_handled",
    "probed": "probed",
}


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    reason: str
    suppressed: bool = False


def process_return_mailbox(
    settings: Settings, database: Database, *, mailbox: ReturnMailbox, clock: Clock
) -> BounceReport:
    """Read every new message of `mailbox`, act on it, file it; what was done, in numbers.

    A mailbox error stops the pass (MailboxError); whatever was filed before stays done.
    """
    secret = settings.require_secret_key()
    report = BounceReport()
    reasons: Counter[str] = Counter()
    for message in mailbox.new_messages():
        decision = _classify(message.raw, secret=secret)
        result = _act_on(settings, database, decision, now=clock())
        if result.outcome == "unknown":
            mailbox.file_unknown(message)
            reasons[result.reason] += 1
        else:
            mailbox.file_handled(message)
        report.messages += 1
        name = _REPORT_FIELD[result.outcome]
        setattr(report, name, getattr(report, name) + 1)
        report.suppressed += result.suppressed
    report.reasons = dict(reasons.most_common())
    return report


def handle_returns(
    settings: Settings,
    database: Database,
    *,
    mailbox: ReturnMailbox,
    clock: Clock,
    send: Callable[[OutgoingMail], None],
) -> BounceReport:
    """Process the return mailbox, then send the probes that are due (with `send`)."""
    report = process_return_mailbox(settings, database, mailbox=mailbox, clock=clock)
    probes = send_due_probes(settings, database, clock=clock, send=send)
    report.probes_sent, report.probes_refused = probes.sent, probes.bounced
    report.probes_waiting = probes.waiting
    report.suppressed += probes.bounced
    return report


def _classify(raw: bytes, *, secret: str) -> ReturnDecision:
    try:
        return classify_return_message(raw, secret=secret)
    except Exception as exc:  # a bug here must not stop the mailbox at this message for good
        return ReturnDecision("unknown", f"could not be read ({exc.__class__.__name__})")


def _act_on(
    settings: Settings, database: Database, decision: ReturnDecision, *, now: datetime
) -> _Result:
    """Carry out one decision in its own transaction, at most once per message."""
    if decision.kind == "unknown" or decision.about is None:
        return _Result("unknown", decision.reason)
    if decision.about.addresses:
        return _by_address_only(settings, database, decision, now=now)
    with database.session() as session:
        subscriber_id = _find_subscriber(session, decision, settings.require_secret_key())
        if isinstance(subscriber_id, str):
            return _Result("unknown", subscriber_id)
        edition = decision.about.edition
        if decision.kind == "temporary" and edition is None:
            # A newsletter's bounce names its edition (VERP, Message-ID); this one did not.
            return _Result("unknown", "a temporary failure without its edition")
        if not _claim(session, decision, now=now):
            return _Result("already_handled", decision.reason)
        changed = _apply(session, decision, subscriber_id, settings=settings, now=now)
        return _Result(decision.kind, decision.reason, suppressed=changed)


def _apply(
    session: Session,
    decision: ReturnDecision,
    subscriber_id: int,
    *,
    settings: Settings,
    now: datetime,
) -> bool:
    """What the message says, applied to its subscriber; True when they were suppressed."""
    edition = decision.about.edition if decision.about is not None else None
    reason = decision.reason
    common: dict[str, Any] = {"settings": settings, "now": now}
    if edition == PROBE_EDITION and decision.kind in ("permanent", "temporary"):
        # The probe came back: permanent ends the subscription, temporary changes nothing.
        if decision.kind == "temporary":
            return False
        return probe_bounced(session, settings, subscriber_id, now=now, reason=reason)
    if decision.kind == "permanent":
        return record_hard_bounce(
            session, subscriber_id, reply=reason, edition_id=edition, via="dsn", **common
        )
    if decision.kind == "temporary" and edition is not None:
        return record_soft_bounce(
            session, subscriber_id, reason=reason, edition_id=edition, **common
        )
    if decision.kind == "complaint":
        return record_complaint(session, subscriber_id, reason=reason, edition_id=edition, **common)
    return record_unsubscribe_by_mail(session, subscriber_id, reason=reason, **common)


def _find_subscriber(session: Session, decision: ReturnDecision, secret: str) -> int | str:
    """The subscriber's id: by the public id of a signed token, or else by checking a
    Message-ID of ours against each recipient of its edition. A string says why not."""
    about = decision.about
    if about is not None and about.public_id is not None:
        found = find_by_public_id(session, about.public_id)
        return found.id if found is not None else "about a subscriber who is no longer on the list"
    if about is None or about.message_id is None or about.edition is None:
        return "about nobody in particular"
    # Whose Message-ID it could be: the edition's recipients, or the probed.
    recipients = session.execute(
        select(Subscriber.id, Subscriber.public_id)
        .join(OutboxRow, OutboxRow.subscriber_id == Subscriber.id)
        .where(OutboxRow.edition_id == about.edition)
        if about.edition != PROBE_EDITION
        else select(Subscriber.id, Subscriber.public_id)
        .join(Probe, Probe.subscriber_id == Subscriber.id)
        .where(Probe.state == "sent")
        .distinct()
    )
    for subscriber_id, public_id in recipients:
        if message_id_matches(secret, about.message_id, edition=about.edition, public_id=public_id):
            return int(subscriber_id)
    return "about a message whose Message-ID matches no recipient of its edition"


def _by_address_only(
    settings: Settings, database: Database, decision: ReturnDecision, *, now: datetime
) -> _Result:
    """A bounce naming subscribers by address only: a probe for each, never more."""
    assert decision.about is not None
    with database.session() as session:
        found = [
            subscriber
            for address in decision.about.addresses
            if (subscriber := find_by_key(session, address_key(address), lock=True)) is not None
            and subscriber.status == "confirmed"
        ]
        if not found:
            return _Result("unknown", "a bounce naming no subscriber, by address only")
        if not _claim(session, decision, now=now):
            return _Result("already_handled", decision.reason)
        if decision.kind != "permanent":
            # A temporary failure proves even less: counted, nothing asked for.
            return _Result("temporary", decision.reason)
        for subscriber in found:
            request_probe(session, settings, subscriber, now=now, reason=decision.reason)
        return _Result("probed", decision.reason)


def _claim(session: Session, decision: ReturnDecision, *, now: datetime) -> bool:
    """Remember the message as handled; False when it was already (by any run).

    An insert that ignores a duplicate key: of two runs at once, the second waits for
    the first's commit and then inserts nothing.
    """
    values = {"key": decision.message_key, "kind": decision.kind, "handled_at": now}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ReturnMessage).values(values).on_conflict_do_nothing()
    return session.execute(statement.returning(ReturnMessage.key)).first() is not None
