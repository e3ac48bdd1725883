"""Every kind of mail the product sends is a proper mail: from the return path, so that
its bounce reaches the return mailbox, and DKIM-signed with From and Subject oversigned.

Each kind goes out through its own real path to aiosmtpd: a newsletter, a test copy to
staff, a confirmation, a notice to staff, and a probe.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.delivery.copies import send_test
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.jobs.staff_mails import draft_ready_mail
from newsletter.mail.mailer import SmtpMailer
from newsletter.returns.mailboxes import MaildirMailbox
from newsletter.returns.process import handle_returns
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from tests.support.clock import FixedClock
from tests.support.dkim import DOMAIN, SELECTOR, dns_with, make_key_pair, signed_header_names
from tests.support.paths import SEEDS_FEED
from tests.support.returns import RETURN_PATH, SENDER, render
from tests.support.smtpserver import Received, TestSmtpServer
from tests.support.subscribers import CONSENT, FORM

STAFF = "redactie@rvjeugdzorg.nl"


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


def test_every_kind_of_mail_comes_from_the_return_path_and_is_signed(
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    tmp_path: Path,
) -> None:
    private, public = make_key_pair(tmp_path)
    settings = make_settings(
        feed={"urls": [str(SEEDS_FEED)]},
        sender={"from": SENDER},
        delivery={"return_path": RETURN_PATH},
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        dkim={"key_file": str(private), "selector": SELECTOR, "domain": DOMAIN},
        bounces={"maildir": "returns"},
    )
    mailer = SmtpMailer(settings, clock=clock)
    kinds: dict[str, Received] = {}

    def newest(kind: str) -> None:
        kinds[kind] = smtp_server.received[-1]

    # A newsletter, to a subscriber added by staff.
    ListManagement(settings, db, clock=clock).add(
        "lezer@example.org",
        name=None,
        themes=[],
        requester=Requester(source="cli"),
        confirmed=True,
        consent_note="paper list",
    )
    fetch_all(settings, db, clock=clock)
    number = draft_edition(settings, db, clock=clock).number
    assert number is not None
    send_test(settings, db, number, [STAFF], clock=clock)
    newest("test copy")
    send_edition(settings, db, number, clock=clock)
    newest("newsletter")
    # A confirmation, asked for through the public flow.
    flows = SubscriberFlows(settings, db, clock=clock)
    [confirmation] = flows.request_subscription(
        email="nieuw@example.org", name=None, themes=[], requester=FORM, consent_text=CONSENT
    )
    assert flows.deliver(confirmation, mailer.send_now)
    newest("confirmation")
    # A notice to staff.
    mailer.send_now(draft_ready_mail(settings, STAFF, number=number, subject="x", articles=1))
    newest("staff notice")
    # A probe, after a report that names the subscriber by address only.
    box = mailbox.Maildir(settings.base_dir / "returns", create=True)
    report = render("postfix-headers-only.eml", {"anouk": "A" * 22}, edition=number)
    report = report.replace(b"anouk@example.org", b"lezer@example.org")
    report = re.sub(rb"(?m)^Message-ID: .*\n", b"", report)
    box.add(re.sub(rb"(?m)^List-Unsubscribe: .*\n(?: .*\n)?", b"", report))
    reader = MaildirMailbox(settings.base_dir / "returns")
    try:
        assert (
            handle_returns(
                settings, db, mailbox=reader, clock=clock, send=mailer.send_now
            ).probes_sent
            == 1
        )
    finally:
        reader.close()
    newest("probe")

    for kind, received in kinds.items():
        assert received.sender == RETURN_PATH, kind
        assert dkim.verify(received.data, dnsfunc=dns_with(public)), kind
        names = signed_header_names(received.data)
        assert names.count(b"from") == 2 and names.count(b"subject") == 2, (kind, names)
    assert len(kinds) == 5
