"""Erasure leaves no trace: not in the outbox's server replies, not in the database file
or its write-ahead log while the web app stays connected; and an access request finds
every reply that names the person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.cli.support import AppContext
from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.db import Database, open_database
from newsletter.delivery.outbox import OutboxRow
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.mail.mailer import OutgoingMail
from newsletter.mail.queue import enqueue, queued_rows
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from tests.support.cli import write_config
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.sending import add_subscribers
from tests.support.smtpserver import TestSmtpServer
from tests.support.subscribers import SECRET, confirm_token, subscribe
from tests.support.waiting import PATIENCE_SECONDS

CLI = Requester(source="cli")
ADDRESS = "Anouk.De.Vries@Example.org"
NAME = "Anouk de Vries"
AGENT = "Mozilla/5.0 (Fairphone 4) Firefox/128.0"
ANOUK = Requester(source="form", ip="198.51.100.23", user_agent=AGENT)
# What must be in no byte of the database's files after the erase, in any case.
TRACES = (b"anouk", b"vries", b"fairphone", b"198.51.100.23")


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
        subscribers={"ip_policy": "store"},
    )


@pytest.fixture
def edition(settings: Settings, db: Database, clock: FixedClock) -> int:
    fetch_all(settings, db, clock=clock)
    result = draft_edition(settings, db, clock=clock.later(minutes=1))
    assert result.number is not None
    return result.number


@pytest.fixture
def people(settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(settings, db, clock=clock)


@pytest.fixture
def web(settings: Settings) -> Iterator[Database]:
    """The web app's engine: its pooled connections stay open the whole time."""
    database = open_database(settings.database_url)
    yield database
    database.dispose()


def sign_up_anouk(settings: Settings, web: Database, clock: FixedClock) -> str:
    """Anouk signs up and confirms on the web app; the address as stored."""
    flows = SubscriberFlows(settings, web, clock=clock)
    [mail] = subscribe(flows, ADDRESS, name=NAME, requester=ANOUK)
    done = flows.confirm(confirm_token(mail), ANOUK)
    assert done is not None
    return str(done.subscriber.email)


def database_files(settings: Settings) -> list[Path]:
    """The SQLite file and whichever of its -wal and -journal files exist."""
    main = Path(str(make_url(settings.database_url).database))
    companions = [main.with_name(main.name + suffix) for suffix in ("-wal", "-journal")]
    return [main, *(path for path in companions if path.exists())]


def left_behind(db: Database, edition: int, clock: FixedClock, reply: str) -> None:
    """An outbox row linked to no one with `reply`: what an erase before replies were cut
    out case-insensitively left of an earlier subscription."""
    with db.session() as session:
        session.add(
            OutboxRow(
                edition_id=edition,
                subscriber_id=None,
                variant="*",
                state="pending",
                created_at=clock(),
                updated_at=clock(),
            )
        )
        session.flush()
        session.execute(
            update(OutboxRow).where(OutboxRow.subscriber_id.is_(None)).values(last_reply=reply)
        )


def replies(db: Database) -> list[str]:
    with db.session() as session:
        return [reply for reply in session.scalars(select(OutboxRow.last_reply)) if reply]


def test_erase_leaves_nothing_in_the_database_files_while_the_web_app_is_connected(
    settings: Settings,
    db: Database,
    web: Database,
    people: ListManagement,
    clock: FixedClock,
    edition: int,
    smtp_server: TestSmtpServer,
) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the files of a PostgreSQL server are the operator's (docs/subscribers.md)")
    stored = sign_up_anouk(settings, web, clock)
    # Her server answers with her address in small letters, as many servers do.
    smtp_server.faults.data[stored].append(f"451 4.7.1 <{stored.lower()}>: greylisted")
    assert send_edition(settings, db, edition, clock=clock).counts.retry == 1
    assert replies(db) == ["451 4.7.1 <(address)>: greylisted"]

    with web.engine.connect() as held:  # a request's connection, open across the erase
        held.execute(select(Subscriber.id)).all()
        held.rollback()
        assert people.erase(ADDRESS, CLI)
        files = database_files(settings)
        assert [path.name for path in files] == ["newsletter.db", "newsletter.db-wal"]
        for path in files:
            data = path.read_bytes().lower()
            for trace in TRACES:
                assert trace not in data, (path.name, trace)
        assert files[1].stat().st_size == 0  # the log was emptied, not only overwritten


def test_an_erase_waits_for_a_reader_and_says_when_the_log_keeps_a_copy(
    settings: Settings, db: Database, web: Database, people: ListManagement, clock: FixedClock
) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite keeps a write-ahead log the application can empty")
    sign_up_anouk(settings, web, clock)
    with web.engine.connect() as reading:
        # A read that stays open past the busy timeout: the log cannot be emptied under it.
        reading.exec_driver_sql("BEGIN")
        reading.execute(select(Subscriber.id)).all()
        assert people.erase(ADDRESS, CLI) is False
        reading.rollback()
    assert people.erase(ADDRESS, CLI) is True  # erasing again empties it
    for path in database_files(settings):
        assert b"anouk" not in path.read_bytes().lower(), path.name


def test_an_access_request_finds_every_reply_that_names_the_address(
    settings: Settings,
    db: Database,
    web: Database,
    people: ListManagement,
    clock: FixedClock,
    edition: int,
) -> None:
    [neighbour] = add_subscribers(settings, db, clock, 1)
    sign_up_anouk(settings, web, clock)
    send_edition(settings, db, edition, clock=clock)
    # Her address in small letters and percent-encoded, from an earlier subscription.
    earlier = "550 5.1.1 <anouk.de.vries@example.org>; see /faq?rcpt=anouk.de.vries%40example.org"
    left_behind(db, edition, clock, earlier)
    with db.session() as session:
        # A reply about someone else whose address only contains hers.
        session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.subscriber_id
                == select(Subscriber.id).where(Subscriber.email == neighbour).scalar_subquery()
            )
            .values(last_reply="452 4.2.2 <jAnouk.De.Vries@example.org>: mailbox full")
        )

    shown = people.show(ADDRESS)
    assert sorted((d.state, d.last_reply) for d in shown.deliveries) == [
        ("pending", earlier),
        ("sent", "250 OK: queued"),
    ]

    people.erase(ADDRESS, CLI)
    assert people.show(ADDRESS).deliveries == ()
    assert sorted(replies(db)) == [
        "250 OK: queued",
        "452 4.2.2 <jAnouk.De.Vries@example.org>: mailbox full",
        "550 5.1.1 <(address)>; see /faq?rcpt=(address)",
    ]


def test_an_address_named_only_in_a_reply_is_still_shown_and_erased(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    edition: int,
    database_url: str,
    tmp_path: Path,
) -> None:
    left_behind(db, edition, clock, "550 <ANOUK.DE.VRIES@EXAMPLE.ORG>")
    config = write_config(tmp_path, database_url)

    def cli(*args: str) -> Result:
        return CliRunner(env={"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_CONFIG": ""}).invoke(
            app,
            ["--config", str(config), "subscribers", *args],
            obj=AppContext(config_path=config, clock=clock),
            catch_exceptions=False,
        )

    shown = cli("show", ADDRESS)
    assert shown.exit_code == 0, shown.output
    assert f"edition {edition} pending reply='550 <ANOUK.DE.VRIES@EXAMPLE.ORG>'" in shown.stdout
    erased = cli("erase", ADDRESS, "--yes")
    assert erased.exit_code == 0 and erased.stderr == "", erased.output
    assert replies(db) == ["550 <(address)>"]


def test_an_erase_removes_a_confirmation_still_waiting_in_the_mail_queue(
    settings: Settings, db: Database, clock: FixedClock, people: ListManagement
) -> None:
    # Under `serve` a sign-up's confirmation waits in the queue until it is sent (or, with
    # the mail server away, for up to two days), with the address and the link.
    queueing = SubscriberFlows(settings, db, clock=clock, mail_queued=lambda: None)
    assert subscribe(queueing, ADDRESS, name=NAME, requester=ANOUK) == []
    with db.session() as session:
        other = OutgoingMail(to="iemand@example.org", subject="x", text="y")
        enqueue(session, [other], now=clock())

    assert people.erase(ADDRESS.upper(), CLI)

    with db.session() as session:
        assert [row["recipient"] for row in queued_rows(session)] == ["iemand@example.org"]
