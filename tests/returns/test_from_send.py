"""From a real send to the return mailbox: what the delivery engine puts in its messages
(VERP envelope sender, Message-ID, List-Unsubscribe) is what the bounce reader reads back.

An edition goes out through a real SMTP server; the reports are then written the way a
remote server would write them around the messages it was actually given.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from email import message_from_bytes
from urllib.parse import unquote, urlsplit

import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.returns.mailboxes import MaildirMailbox
from newsletter.returns.process import process_return_mailbox
from subscribers.consent import Requester
from subscribers.management import ListManagement
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import Received, TestSmtpServer
from tests.support.subscribers import events_of, status_of
from tests.support.waiting import PATIENCE_SECONDS

RETURN_PATH = "bounces@rvjeugdzorg.nl"
READERS = ["anouk@example.org", "bram@example.net", "carla@example.com", "daan@example.nl"]


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: TestSmtpServer) -> Settings:
    return make_settings(
        feed={"urls": [str(SEEDS_FEED)]},
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "timeout_seconds": PATIENCE_SECONDS},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        site={"base_url": "https://nieuwsbrief.rvjeugdzorg.nl"},
        delivery={"return_path": RETURN_PATH, "verp": True},
        bounces={"maildir": "returns"},
    )


def dsn(copy: Received, *, action: str, status: str) -> bytes:
    """A delivery report as a remote server writes it, to the copy's envelope sender."""
    [recipient] = copy.recipients
    headers = copy.data.split(b"\r\n\r\n", 1)[0].decode()
    return (
        f"Return-Path: <>\nDelivered-To: {copy.sender}\nTo: {copy.sender}\n"
        "From: MAILER-DAEMON@mx.example.org\nSubject: Delivery Status Notification\n"
        f"Message-ID: <dsn.{recipient}.{action}@mx.example.org>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nDelivery to {recipient} {action}.\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{headers}\n\n--b--\n"
    ).encode()


def complaint(copy: Received) -> bytes:
    """An ARF abuse report around the whole message, recipient redacted."""
    [recipient] = copy.recipients
    original = copy.data.replace(recipient.encode(), b"redacted@example.invalid")
    return (
        b"From: fbl@isp.example\nTo: " + RETURN_PATH.encode() + b"\n"
        b"Subject: complaint\nMessage-ID: <arf.1@isp.example>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\n\n'
        b"--f\nContent-Type: text/plain\n\nspam report\n\n"
        b"--f\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n\n"
        b"--f\nContent-Type: message/rfc822\n\n" + original + b"\n--f--\n"
    )


def mailto_unsubscribe(copy: Received) -> bytes:
    """What a mail program sends for the List-Unsubscribe mailto: link of the copy."""
    header = " ".join(str(message_from_bytes(copy.data)["List-Unsubscribe"]).split())
    mailto = next(part.strip("<> ,") for part in header.split(",") if "mailto:" in part)
    parts = urlsplit(mailto)
    subject = unquote(parts.query.removeprefix("subject="))
    [recipient] = copy.recipients
    return (
        f"From: {recipient}\nTo: {parts.path}\nSubject: {subject}\n"
        f"Message-ID: <unsub.{recipient}>\n\n"
    ).encode()


def test_reports_about_a_real_send_reach_the_right_subscribers(
    settings: Settings, db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    fetch_all(settings, db, clock=clock)
    edition = draft_edition(settings, db, clock=clock.later(minutes=1)).number
    assert edition is not None
    people = ListManagement(settings, db, clock=clock)
    for address in READERS:
        people.add(
            address,
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="signed up on paper",
        )
    assert send_edition(settings, db, edition, clock=clock.later(minutes=1)).finished
    copies = {item.recipients[0]: item for item in smtp_server.received}
    assert copies["anouk@example.org"].sender.startswith("bounces+")  # VERP

    returns = mailbox.Maildir(settings.base_dir / "returns", create=True)
    returns.add(dsn(copies["anouk@example.org"], action="failed", status="5.1.1"))
    returns.add(dsn(copies["bram@example.net"], action="delayed", status="4.2.2"))
    returns.add(complaint(copies["carla@example.com"]))
    returns.add(mailto_unsubscribe(copies["daan@example.nl"]))
    reader = MaildirMailbox(settings.base_dir / "returns")
    report = process_return_mailbox(settings, db, mailbox=reader, clock=clock.later(hours=2))
    reader.close()

    assert (report.permanent, report.temporary, report.complaints, report.unsubscribes) == (
        1,
        1,
        1,
        1,
    )
    assert report.not_understood == 0
    assert {address: status_of(db, address) for address in READERS} == {
        "anouk@example.org": "bounced",
        "bram@example.net": "confirmed",
        "carla@example.com": "complained",
        "daan@example.nl": "unsubscribed",
    }
    assert {address: events_of(db, address)[1:] for address in READERS} == {
        "anouk@example.org": ["bounced"],
        "bram@example.net": ["soft_bounced"],
        "carla@example.com": ["complained"],
        "daan@example.nl": ["unsubscribed"],
    }
