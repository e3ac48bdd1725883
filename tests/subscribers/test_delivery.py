"""Delivering the sign-up mails to a real SMTP server (aiosmtpd) and logging the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.mail.mailer import SmtpMailer
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import ConsentEvent
from tests.support.clock import FixedClock
from tests.support.smtpserver import TestSmtpServer
from tests.support.subscribers import (
    WEB,
    all_text,
    confirm_token,
    events_of,
    subscribe,
    subscribe_and_confirm,
)


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(make_settings: Callable[..., Settings], smtp_server: TestSmtpServer) -> Settings:
    return make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
    )


@pytest.fixture
def flows(smtp_settings: Settings, db: Database, clock: FixedClock) -> SubscriberFlows:
    return SubscriberFlows(smtp_settings, db, clock=clock)


@pytest.fixture
def people(smtp_settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(smtp_settings, db, clock=clock)


@pytest.fixture
def mailer(smtp_settings: Settings, clock: FixedClock) -> SmtpMailer:
    return SmtpMailer(smtp_settings, clock=clock)


def test_the_confirmation_mail_arrives_and_its_link_confirms(
    flows: SubscriberFlows, mailer: SmtpMailer, smtp_server: TestSmtpServer, db: Database
) -> None:
    [mail] = subscribe(flows, "ouder@example.org", name="Sanne\u00a0de Vries")
    assert flows.deliver(mail, mailer.send_now)
    [received] = smtp_server.received
    assert received.recipients == ["ouder@example.org"]
    message = received.message()
    assert message["To"] == "ouder@example.org"
    # A long subject is folded right after "Subject:"; unfolding leaves a leading space.
    assert message["Subject"].strip() == mail.subject
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Sanne" not in received.data.decode("utf-8", "replace")
    assert '<html lang="nl">' in html.get_content()
    assert flows.confirm(confirm_token(mail), WEB) is not None
    assert events_of(db, "ouder@example.org") == [
        "subscribe_requested",
        "confirmation_mail_sent",
        "confirmed",
    ]


def test_a_refused_mail_is_logged_as_failed_without_the_address(
    flows: SubscriberFlows, mailer: SmtpMailer, smtp_server: TestSmtpServer, db: Database
) -> None:
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 unknown user"
    [mail] = subscribe(flows, "weg@example.org")
    assert not flows.deliver(mail, mailer.send_now)
    assert smtp_server.received == []
    assert events_of(db, "weg@example.org") == ["subscribe_requested", "confirmation_mail_failed"]
    with db.session() as session:
        failed = session.scalars(
            select(ConsentEvent).where(ConsentEvent.event == "confirmation_mail_failed")
        ).one()
    assert failed.details is not None and "550 5.1.1" in failed.details["error"]
    assert "weg@example.org" not in failed.details["error"]
    assert failed.subscriber_id is not None


def test_an_unreachable_server_is_a_failed_delivery(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    from tests.support.smtpserver import free_port

    settings = make_settings(smtp={"host": "127.0.0.1", "port": free_port()})
    flows = SubscriberFlows(settings, db, clock=clock)
    [mail] = subscribe(flows, "ouder@example.org")
    assert not flows.deliver(mail, SmtpMailer(settings, clock=clock).send_now)
    assert events_of(db, "ouder@example.org")[-1] == "confirmation_mail_failed"


def test_notice_and_address_change_mails_are_logged_by_kind(
    flows: SubscriberFlows, mailer: SmtpMailer, smtp_server: TestSmtpServer, db: Database
) -> None:
    view = subscribe_and_confirm(flows, "oud@example.org")
    [notice] = subscribe(flows, "oud@example.org")
    assert flows.deliver(notice, mailer.send_now)
    token = view.preferences_url.rsplit("/", 1)[1]
    [change] = flows.request_address_change(token, new_email="nieuw@example.org", requester=WEB)
    assert flows.deliver(change, mailer.send_now)
    assert smtp_server.delivered_to() == ["oud@example.org", "nieuw@example.org"]
    assert events_of(db, "oud@example.org")[-1] == "notice_mail_sent"
    assert events_of(db, "nieuw@example.org") == [
        "address_change_requested",
        "address_change_mail_sent",
    ]
    with db.session() as session:
        owners = set(
            session.scalars(
                select(ConsentEvent.subscriber_id).where(
                    ConsentEvent.event.in_(["notice_mail_sent", "address_change_mail_sent"])
                )
            )
        )
    assert len(owners) == 1 and None not in owners
    assert "nieuw@example.org" in all_text(db)  # the pending change, until confirmed


def test_a_mail_that_is_not_a_sign_up_mail_is_refused(flows: SubscriberFlows) -> None:
    from newsletter.mail.mailer import OutgoingMail

    with pytest.raises(ValueError, match="not a subscriber mail"):
        flows.deliver(
            OutgoingMail(to="x@example.org", subject="x", text="x", kind="edition"), print
        )
