"""Probes: a bounce that names a subscriber by address only costs them one mail, never
their subscription; only a probe that bounces too ends it.

The return mailbox is a real Maildir, the probes go to a real SMTP server (aiosmtpd),
and the reports are the corpus's and flufl.bounce's own collection of real-world ones.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import dkim
import pytest
from flufl.bounce import all_failures
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.mail.identities import PROBE_EDITION, message_id, read_verp_address
from newsletter.mail.mailer import SmtpMailer
from newsletter.returns.classify import classify_return_message
from newsletter.returns.mailboxes import MaildirMailbox
from newsletter.returns.probes import Probe
from newsletter.returns.process import BounceReport, handle_returns
from subscribers.consent import Requester
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from tests.support.clock import FixedClock
from tests.support.dkim import DOMAIN, SELECTOR, dns_with, make_key_pair, signed_header_names
from tests.support.paths import DATA_DIR
from tests.support.returns import RETURN_PATH, SENDER, render
from tests.support.smtpserver import TestSmtpServer
from tests.support.subscribers import events_of, status_of

ANOUK = "anouk@example.org"
FLUFL_CORPUS = DATA_DIR / "flufl-bounce"


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: TestSmtpServer) -> Settings:
    # Default settings: no VERP.
    return make_settings(
        sender={"from": SENDER},
        delivery={"return_path": RETURN_PATH},
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        bounces={"maildir": "returns"},
    )


@pytest.fixture
def maildir(settings: Settings) -> mailbox.Maildir:
    return mailbox.Maildir(settings.base_dir / "returns", create=True)


def subscribe(settings: Settings, db: Database, clock: FixedClock, *emails: str) -> dict[str, str]:
    """Confirmed subscribers; their public ids by address."""
    people = ListManagement(settings, db, clock=clock)
    for email in emails:
        people.add(
            email,
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="paper list",
        )
    with db.session() as session:
        rows = session.execute(select(Subscriber.email, Subscriber.public_id)).all()
    return {str(email): str(public_id) for email, public_id in rows}


def process(settings: Settings, db: Database, clock: FixedClock) -> BounceReport:
    box = MaildirMailbox(settings.base_dir / "returns")
    try:
        send = SmtpMailer(settings, clock=clock).send_now
        return handle_returns(settings, db, mailbox=box, clock=clock, send=send)
    finally:
        box.close()


def forged_report(public_ids: dict[str, str]) -> bytes:
    """A Postfix-style report naming Anouk's address, with nothing we signed in it: what
    anybody could write to our return address."""
    raw = render("postfix-headers-only.eml", {"anouk": public_ids[ANOUK]}, edition=1)
    raw = re.sub(rb"(?m)^Message-ID: .*\n", b"", raw)
    return re.sub(rb"(?m)^List-Unsubscribe: .*\n(?: .*\n)?", b"", raw)


def test_a_report_naming_a_subscriber_by_address_only_costs_one_probe(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    maildir: mailbox.Maildir,
    smtp_server: TestSmtpServer,
) -> None:
    public_ids = subscribe(settings, db, clock, ANOUK)
    maildir.add(forged_report(public_ids))
    report = process(settings, db, clock)
    assert (report.probed, report.probes_sent, report.permanent, report.suppressed) == (1, 1, 0, 0)
    assert status_of(db, ANOUK) == "confirmed"
    [received] = smtp_server.received
    assert received.recipients == [ANOUK]
    probe = received.message()
    assert probe["Subject"] == "Komt de nieuwsbrief van Radicale vernieuwing jeugdzorg bij je aan?"
    assert probe["Message-ID"] == message_id(
        settings.require_secret_key(),
        edition=PROBE_EDITION,
        public_id=public_ids[ANOUK],
        domain="rvjeugdzorg.nl",
    )
    assert received.sender == RETURN_PATH  # its bounce comes back where bounces are read
    assert "/unsubscribe/" in probe.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert events_of(db, ANOUK)[-2:] == ["probe_requested", "probe_sent"]
    # Another forged report the same week: no second probe; a second pass, nothing at all.
    maildir.add(forged_report(public_ids).replace(b"Message-Id: <2026", b"Message-Id: <2027"))
    again = process(settings, db, clock.later(days=2))
    assert (again.probed, again.probes_sent) == (1, 0)
    assert process(settings, db, clock) == BounceReport()
    assert len(smtp_server.received) == 1
    assert status_of(db, ANOUK) == "confirmed"


def test_a_probe_refused_for_good_bounces_its_subscriber(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    maildir: mailbox.Maildir,
    smtp_server: TestSmtpServer,
) -> None:
    maildir.add(forged_report(subscribe(settings, db, clock, ANOUK)))
    smtp_server.faults.rcpt[ANOUK] = "550 5.1.1 <anouk@example.org>: user unknown"
    report = process(settings, db, clock)
    assert (report.probed, report.probes_refused, report.suppressed) == (1, 1, 1)
    assert status_of(db, ANOUK) == "bounced"
    assert events_of(db, ANOUK)[-2:] == ["probe_requested", "bounced"]


def test_a_probe_refused_for_now_is_tried_again_at_the_next_pass(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    maildir: mailbox.Maildir,
    smtp_server: TestSmtpServer,
) -> None:
    maildir.add(forged_report(subscribe(settings, db, clock, ANOUK)))
    smtp_server.faults.rcpt[ANOUK] = "451 4.3.0 try again later"
    assert process(settings, db, clock).probes_waiting == 1
    del smtp_server.faults.rcpt[ANOUK]
    assert process(settings, db, clock.later(hours=1)).probes_sent == 1
    assert status_of(db, ANOUK) == "confirmed"


def test_a_probe_that_comes_back_bounces_its_subscriber(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    maildir: mailbox.Maildir,
    smtp_server: TestSmtpServer,
) -> None:
    public_ids = subscribe(settings, db, clock, ANOUK)
    maildir.add(forged_report(public_ids))
    process(settings, db, clock)
    [sent] = smtp_server.received
    # The relay took the probe, the mailbox behind it did not: its report returns the
    # probe's headers, with its signed Message-ID.
    returned = (
        forged_report(public_ids)
        .replace(
            b"Subject: Nieuwsbrief: nieuwe verhalen uit de beweging\n",
            b"Subject: " + sent.message()["Subject"].encode() + b"\n"
            b"Message-ID: " + sent.message()["Message-ID"].encode() + b"\n",
        )
        .replace(b"Message-Id: <2026", b"Message-Id: <2028")
    )
    maildir.add(returned)
    report = process(settings, db, clock.later(hours=2))
    assert (report.permanent, report.probed, report.suppressed) == (1, 0, 1)
    assert status_of(db, ANOUK) == "bounced"
    with db.session() as session:
        assert session.scalars(select(Probe.state)).all() == ["bounced"]


def test_a_probe_goes_to_subscribers_only_and_once_per_interval(
    settings: Settings, db: Database, clock: FixedClock, maildir: mailbox.Maildir
) -> None:
    public_ids = subscribe(settings, db, clock, ANOUK)
    maildir.add(forged_report(public_ids).replace(ANOUK.encode(), b"niemand@example.org"))
    report = process(settings, db, clock)
    assert (report.probed, report.not_understood) == (0, 1)
    assert report.reasons == {"a bounce naming no subscriber, by address only": 1}
    interval = timedelta(days=settings.bounces.probe_interval_days)
    for days, copy in ((0, b"<2030"), (interval.days + 1, b"<2031")):
        maildir.add(forged_report(public_ids).replace(b"Message-Id: <2026", b"Message-Id: " + copy))
        process(settings, db, clock.later(days=days))
    with db.session() as session:
        assert len(session.scalars(select(Probe.id)).all()) == 2  # now, and after the interval


def flufl_samples() -> list[Path]:
    return sorted(FLUFL_CORPUS.glob("*.txt"))


@pytest.mark.parametrize("path", flufl_samples(), ids=lambda path: path.name)
def test_flufl_bounces_own_collection_ends_in_probes_never_in_a_status_change(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    maildir: mailbox.Maildir,
    smtp_server: TestSmtpServer,
    path: Path,
) -> None:
    # Real reports from two decades of mail servers; nothing in them is ours, so the
    # addresses they name, all made subscribers here, may each get a probe at most.
    raw = path.read_bytes()
    try:
        temporary, permanent = all_failures(message_from_bytes(raw))
    except Exception:  # flufl.bounce cannot read it either
        temporary, permanent = set(), set()
    named = sorted(
        {address.decode("utf-8", "replace") for address in permanent or temporary} - {""}
    )
    emails = [email for email in named if "@" in email and len(email) <= 254]
    try:
        subscribe(settings, db, clock, *emails)
    except Exception:  # an address our sign-up refuses: it cannot be a subscriber
        emails = []
    maildir.add(raw)
    report = process(settings, db, clock)
    assert report.messages == 1
    assert report.permanent == report.complaints == report.unsubscribes == 0
    assert report.suppressed == 0
    with db.session() as session:
        assert set(session.scalars(select(Subscriber.status))) <= {"confirmed"}
    decision = classify_return_message(raw, secret=settings.require_secret_key())
    if decision.kind == "permanent" and emails:
        assert report.probed == 1 and report.probes_sent >= 1
    else:
        assert report.probed == 0


def test_all_but_two_of_flufl_bounces_permanent_failures_end_in_a_probe() -> None:
    # The two: an expiry with a 4.4.7 status (a passing cause: counted as temporary),
    # and one whose failure shows only in the returned original (never read for that).
    permanent = probed = 0
    for path in flufl_samples():
        raw = path.read_bytes()
        try:
            if not all_failures(message_from_bytes(raw))[1]:
                continue
        except Exception:  # flufl.bounce cannot read it either
            continue
        permanent += 1
        decision = classify_return_message(raw, secret="a key of our own")
        probed += decision.kind == "permanent" and bool(decision.about and decision.about.addresses)
    assert (permanent, probed) == (101, 99)


def test_a_probe_is_signed_and_goes_from_the_verp_address_when_verp_is_on(
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    tmp_path: Path,
) -> None:
    private, public = make_key_pair(tmp_path)
    settings = make_settings(
        sender={"from": SENDER},
        delivery={"return_path": RETURN_PATH, "verp": True},
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        bounces={"maildir": "returns"},
        dkim={"key_file": str(private), "selector": SELECTOR, "domain": DOMAIN},
    )
    maildir = mailbox.Maildir(settings.base_dir / "returns", create=True)
    public_ids = subscribe(settings, db, clock, ANOUK)
    maildir.add(forged_report(public_ids))
    assert process(settings, db, clock).probes_sent == 1
    [received] = smtp_server.received
    identity = read_verp_address(settings.require_secret_key(), received.sender)
    assert identity is not None
    assert (identity.edition, identity.public_id) == (PROBE_EDITION, public_ids[ANOUK])
    assert dkim.verify(received.data, dnsfunc=dns_with(public))
    names = signed_header_names(received.data)
    assert names.count(b"from") == 2 and names.count(b"subject") == 2
