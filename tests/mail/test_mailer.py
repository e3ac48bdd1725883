"""Single mails through the SMTP client to a real aiosmtpd server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import DeliveryError
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from tests.support.clock import FixedClock
from tests.support.dkim import DOMAIN, SELECTOR, dns_with, make_key_pair, signed_header_names
from tests.support.smtpserver import TestSmtpServer


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailer(
    make_settings: Callable[..., Settings], smtp_server: TestSmtpServer, clock: FixedClock
) -> SmtpMailer:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
    )
    return SmtpMailer(settings, clock=clock)


def test_mail_arrives_with_its_headers_and_both_parts(
    mailer: SmtpMailer, smtp_server: TestSmtpServer, clock: FixedClock
) -> None:
    mailer.send_now(
        OutgoingMail(
            to="ouder@example.org",
            subject="Bevestig je aanmelding – cliëntenraad",
            text="Klik op de link.\n",
            html="<p>Klik op de link.</p>",
        )
    )
    [received] = smtp_server.received
    assert received.sender == "nieuwsbrief@rvjeugdzorg.nl"
    assert received.recipients == ["ouder@example.org"]
    message = received.message()
    assert message["To"] == "ouder@example.org"
    assert message["Subject"] == "Bevestig je aanmelding – cliëntenraad"
    assert message["From"] == "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]) == clock()
    assert message["Message-ID"].endswith("@rvjeugdzorg.nl>")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().splitlines() == ["Klik op de link."]
    assert "<p>Klik op de link.</p>" in html.get_content()


def test_line_breaks_in_header_values_cannot_add_headers(
    mailer: SmtpMailer, smtp_server: TestSmtpServer
) -> None:
    mailer.send_now(
        OutgoingMail(
            to="ouder@example.org",
            subject="Hallo\r\nBcc: slachtoffer@example.com",
            text="x",
        )
    )
    message = smtp_server.received[0].message()
    assert message["Bcc"] is None
    assert message["Subject"] == "Hallo Bcc: slachtoffer@example.com"
    assert smtp_server.received[0].recipients == ["ouder@example.org"]


def test_a_refused_recipient_is_a_delivery_error(
    mailer: SmtpMailer, smtp_server: TestSmtpServer
) -> None:
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 unknown user"
    with pytest.raises(DeliveryError, match=r"refused the mail to weg@example\.org: 550 5\.1\.1"):
        mailer.send_now(OutgoingMail(to="weg@example.org", subject="x", text="x"))


def test_a_single_mail_goes_out_from_the_return_path_and_signed(
    make_settings: Callable[..., Settings],
    smtp_server: TestSmtpServer,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    # Confirmations and notices bounce like newsletters: to the return mailbox, under the
    # same DKIM signature, or nobody learns that the address is dead.
    private, public = make_key_pair(tmp_path)
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        delivery={"return_path": "bounces@rvjeugdzorg.nl"},
        dkim={"key_file": str(private), "selector": SELECTOR, "domain": DOMAIN},
    )
    SmtpMailer(settings, clock=clock).send_now(
        OutgoingMail(to="ouder@example.org", subject="Bevestig je aanmelding", text="Klik.\n")
    )
    [received] = smtp_server.received
    assert received.sender == "bounces@rvjeugdzorg.nl"
    assert dkim.verify(received.data, dnsfunc=dns_with(public))
    names = signed_header_names(received.data)
    assert names.count(b"from") == 2 and names.count(b"subject") == 2
