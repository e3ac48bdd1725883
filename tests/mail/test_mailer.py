"""Single mails through the SMTP client to a real aiosmtpd server."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, DeliveryError
from newsletter.mail.mailer import OutgoingMail, SmtpMailer, default_helo_name
from tests.support.clock import FixedClock
from tests.support.dkim import DOMAIN, SELECTOR, dns_with, make_key_pair, signed_header_names
from tests.support.smtpserver import TestSmtpServer
from tests.support.tls import TestCa


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


# -- what a real relay needs: the EHLO name, TLS with the organisation's own CA ----------

RELAY_NAME = "smtp.rvjeugdzorg.test"


def relay_settings(
    make_settings: Callable[..., Settings], server: TestSmtpServer, **sections: dict[str, object]
) -> Settings:
    smtp = {"host": "127.0.0.1", "port": server.port, "security": "starttls"}
    smtp.update(sections.pop("smtp", {}))  # type: ignore[arg-type]
    return make_settings(
        smtp=smtp,
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        **sections,
    )


def test_starttls_trusts_the_ca_file_and_checks_the_name_the_settings_give(
    make_settings: Callable[..., Settings], clock: FixedClock, test_ca: TestCa
) -> None:
    # The relay is reached by address, its certificate (of the organisation's own CA)
    # names it by name: both come from the settings, and EHLO says who we are.
    server = TestSmtpServer(tls_context=test_ca.server_context(RELAY_NAME)).start()
    try:
        settings = relay_settings(
            make_settings,
            server,
            smtp={"tls_server_name": RELAY_NAME, "helo_name": "nieuwsbrief.rvjeugdzorg.nl"},
            tls={"ca_file": str(test_ca.cert)},
        )
        SmtpMailer(settings, clock=clock).send_now(
            OutgoingMail(to="ouder@example.org", subject="Bevestig", text="Klik.\n")
        )
    finally:
        server.stop()
    assert server.delivered_to() == ["ouder@example.org"]
    # Once before STARTTLS and once after it, as RFC 3207 wants.
    assert server.helo_names == ["nieuwsbrief.rvjeugdzorg.nl", "nieuwsbrief.rvjeugdzorg.nl"]


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({}, "certificate verify failed"),
        ({"smtp": {"tls_server_name": "andere.rvjeugdzorg.test"}}, "certificate verify failed"),
        ({"tls": {"min_version": "1.3"}}, "TLS with"),
    ],
    ids=["unknown CA", "wrong name", "too old"],
)
def test_a_relay_that_fails_the_tls_check_gets_nothing(
    make_settings: Callable[..., Settings],
    clock: FixedClock,
    test_ca: TestCa,
    sections: dict[str, dict[str, object]],
    problem: str,
) -> None:
    context = test_ca.server_context(RELAY_NAME, max_version=ssl.TLSVersion.TLSv1_2)
    server = TestSmtpServer(tls_context=context).start()
    try:
        tls = {"ca_file": str(test_ca.cert), **sections.get("tls", {})}
        if not sections:
            tls = {}  # the system's CAs only: they do not know the organisation's CA
        smtp = {"tls_server_name": RELAY_NAME, **sections.get("smtp", {})}
        settings = relay_settings(make_settings, server, smtp=smtp, tls=tls)
        with pytest.raises(DeliveryError, match=problem):
            SmtpMailer(settings, clock=clock).send_now(
                OutgoingMail(to="ouder@example.org", subject="Bevestig", text="Klik.\n")
            )
    finally:
        server.stop()
    assert server.received == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "does not exist"), ("geen certificaat", "holds no usable certificate")],
)
def test_an_unusable_ca_file_is_a_one_line_settings_error(
    make_settings: Callable[..., Settings],
    clock: FixedClock,
    tmp_path: Path,
    content: str | None,
    problem: str,
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    settings = make_settings(smtp={"security": "starttls"}, tls={"ca_file": str(ca_file)})
    with pytest.raises(ConfigError, match=rf"^tls\.ca_file: .*{problem}") as raised:
        SmtpMailer(settings, clock=clock)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("fqdn", "name"),
    [
        ("mail.rvjeugdzorg.nl", "mail.rvjeugdzorg.nl"),
        ("Mail.RVJeugdzorg.nl.", "mail.rvjeugdzorg.nl"),
        ("buildhost", "rvjeugdzorg.nl"),
        ("localhost", "rvjeugdzorg.nl"),
        ("localhost.localdomain", "rvjeugdzorg.nl"),
    ],
)
def test_without_a_helo_name_ehlo_says_a_name_with_a_dot(fqdn: str, name: str) -> None:
    assert default_helo_name(fqdn, "nieuwsbrief@rvjeugdzorg.nl") == name


def test_a_helo_name_that_is_no_host_name_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.helo_name"):
        make_settings(smtp={"helo_name": "mijn server"})
