"""Importing a batch at a time: the same outcome as adding row by row, and no half batch."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput, NewsletterError, SubscriberError
from newsletter.mail.mailer import OutgoingMail
from subscribers import staff
from subscribers.addresses import AddressNormalizer, keyed_hash, normalize_address
from subscribers.batches import ConfirmationMails
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.importing import ImportReport, RowProblem, read_rows
from subscribers.mails import SubscriberMails
from subscribers.management import ListManagement
from subscribers.models import (
    ConfirmationToken,
    ConsentEvent,
    ConsentText,
    Subscriber,
    Suppression,
)
from subscribers.records import Operation
from tests.support.clock import FixedClock
from tests.support.subscribers import SECRET, subscribe, subscribe_and_confirm

IMPORT = Requester(source="import")
STAFF = Requester(source="staff", ip="192.0.2.7", user_agent="Firefox (test)", staff_name="Anna")
NOTE = "Ledenlijst van de cliëntenraad"
# Every kind of line and of address the rules treat differently, in batches of three.
MIXED_FILE = "\n".join(
    [
        "email,name,themes",
        "nieuw1@example.org,Nieuw Een,doe-je-mee",
        "geen-adres,Twee,",
        "bevestigd@example.org,Al Bevestigd,",
        "Wachtend@Example.org,Wacht,onderzoek",
        "afgemeld@example.org,Weg,",
        "gewist@example.org,,",
        "vol+b@example.org,Vol,",
        "NIEUW1@example.org,Dubbel,",
        "twee+1@example.org,,",
        "twee+2@example.org,,",
        "twee+3@example.org,,",
        "twee+4@example.org,,",
        "nieuw2@example.org,Klik op https://spam.example,",
        "nieuw3@example.org,Drie,bestaat-niet",
        "zoë@bücher.example,Zoë,doe-je-mee;onderzoek",
        "hoofd@example.org,Hoofd,",
        "laatste@example.org,Laatste,",
    ]
)
THEMES = {"doe-je-mee": {"name": "Doe je mee?"}, "onderzoek": {"name": "Onderzoek"}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(themes=THEMES)


@pytest.fixture
def flows(settings: Settings, db: Database, clock: FixedClock) -> SubscriberFlows:
    return SubscriberFlows(settings, db, clock=clock)


@pytest.fixture
def people(settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(settings, db, clock=clock)


def known_people(flows: SubscriberFlows, people: ListManagement, clock: FixedClock) -> None:
    """Who is on the list before the import: one of each status, and a full mailbox."""
    subscribe_and_confirm(flows, "bevestigd@example.org")
    subscribe(flows, "wachtend@example.org")
    subscribe_and_confirm(flows, "afgemeld@example.org")
    people.remove("afgemeld@example.org", Requester(source="cli"))
    subscribe_and_confirm(flows, "gewist@example.org")
    people.erase("gewist@example.org", Requester(source="cli"))
    for tag in ("1", "2", "3"):
        subscribe(flows, f"vol+{tag}@example.org")
    subscribe(flows, "Hoofd@example.org")
    clock.advance(minutes=5)


def empty_the_list(db: Database) -> None:
    with db.session() as session:
        for model in (ConsentEvent, ConfirmationToken, Suppression, Subscriber, ConsentText):
            session.execute(delete(model))


def import_row_by_row(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    text_: str,
    *,
    requester: Requester,
    confirmed: bool,
) -> ImportReport:
    """What `subscribers import` did before batches: each row on its own, as `add` does."""
    report = ImportReport()
    for item in read_rows(io.StringIO(text_, newline=""), settings):
        if isinstance(item, RowProblem):
            report.problems.append(item)
            continue
        op = Operation(settings, SECRET, SubscriberMails(settings), clock())
        try:
            with db.session() as session:
                outcome = staff.add_address(
                    session,
                    op,
                    item.address,
                    name=item.name,
                    themes=item.themes,
                    requester=requester,
                    confirmed=confirmed,
                    consent_note=NOTE if confirmed else None,
                    confirmed_event="imported",
                )
        except SubscriberError as exc:
            report.problems.append(RowProblem(item.line, str(exc), "suppressed"))
            continue
        if outcome.result == "confirmed":
            report.confirmed += 1
        elif outcome.result == "pending":
            report.pending += 1
            report.mails.extend(outcome.mails)
        elif outcome.result == "already_confirmed":
            report.unchanged += 1
        else:
            reason = "this address had its confirmation mails for today"
            report.problems.append(RowProblem(item.line, reason, "mail_limit"))
    return report


_TOKEN = re.compile(r"/confirm/[A-Za-z0-9_-]+")


def _blank(value: str | None) -> str | None:
    return _TOKEN.sub("/confirm/TOKEN", value) if value is not None else None


def outcome(db: Database, report: ImportReport) -> dict[str, Any]:
    """What a person could check after an import: the report and every stored row."""
    with db.session() as session:
        subscribers = sorted(
            session.execute(
                select(
                    Subscriber.email,
                    Subscriber.email_key,
                    Subscriber.name,
                    Subscriber.status,
                    Subscriber.themes,
                    Subscriber.created_at,
                    Subscriber.updated_at,
                    Subscriber.confirmed_at,
                    Subscriber.unsubscribed_at,
                )
            ).all()
        )
        events = session.execute(
            select(
                Subscriber.email_key,
                ConsentEvent.subject_hash,
                ConsentEvent.mailbox_hash,
                ConsentEvent.event,
                ConsentEvent.source,
                ConsentEvent.ip,
                ConsentEvent.user_agent,
                ConsentEvent.consent_text_hash,
                ConsentEvent.details,
                ConsentEvent.created_at,
            )
            .outerjoin(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
            .order_by(ConsentEvent.id)
        ).all()
        tokens = sorted(
            session.execute(
                select(
                    Subscriber.email_key,
                    ConfirmationToken.purpose,
                    ConfirmationToken.requested,
                    ConfirmationToken.created_at,
                    ConfirmationToken.expires_at,
                ).join(Subscriber, Subscriber.id == ConfirmationToken.subscriber_id)
            ).all(),
            key=repr,
        )
        suppressions = sorted(session.execute(select(Suppression.address_hash, Suppression.reason)))
    return {
        "counts": (report.confirmed, report.pending, report.unchanged, report.skipped),
        "problems": [(p.line, p.reason, p.code, p.detail) for p in report.problems],
        "mails": [(m.to, m.subject, m.kind, _blank(m.text), _blank(m.html)) for m in report.mails],
        "subscribers": [tuple(row) for row in subscribers],
        "events": [tuple(row) for row in events],
        "tokens": [tuple(row) for row in tokens],
        "suppressions": [tuple(row) for row in suppressions],
    }


@pytest.mark.parametrize("confirmed", [False, True], ids=["pending", "confirmed"])
@pytest.mark.parametrize("requester", [IMPORT, STAFF], ids=["cli", "staff"])
def test_batches_store_what_row_by_row_stored(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    flows: SubscriberFlows,
    people: ListManagement,
    confirmed: bool,
    requester: Requester,
) -> None:
    known_people(flows, people, clock)
    before = import_row_by_row(
        settings, db, clock, MIXED_FILE, requester=requester, confirmed=confirmed
    )
    expected = outcome(db, before)
    empty_the_list(db)
    clock.advance(minutes=-5)
    known_people(flows, people, clock)
    report = people.import_csv(
        io.StringIO(MIXED_FILE, newline=""),
        requester=requester,
        confirmed=confirmed,
        consent_note=NOTE if confirmed else None,
        batch_rows=3,
    )
    assert outcome(db, report) == expected
    # The file holds every case the rules tell apart.
    codes = {problem.code for problem in report.problems}
    assert {"email:invalid", "duplicate", "name:not_a_name", "themes:unknown"} <= codes
    assert ("suppressed" if confirmed else "mail_limit") in codes
    assert report.unchanged == 1 and report.rows == MIXED_FILE.count("\n")


def _fail_on_event_about(db: Database, email: str) -> None:
    """A trigger that makes the database refuse the consent event about `email`: a
    failure in the middle of a batch, after its subscribers were inserted."""
    subject = keyed_hash(email.casefold(), SECRET)
    with db.engine.begin() as connection:
        if db.engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_event BEFORE INSERT ON consent_events "
                    f"WHEN NEW.subject_hash = '{subject}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.subject_hash = '{subject}' THEN "
                    "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_event BEFORE INSERT ON consent_events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_event()"
                )
            )


def subscribers_without_event(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Subscriber)
                .where(
                    ~select(ConsentEvent.id)
                    .where(ConsentEvent.subscriber_id == Subscriber.id)
                    .exists()
                )
            )
            or 0
        )


def stored_emails(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Subscriber.email)))


def numbered_file(count: int) -> str:
    return "email,name,themes\n" + "".join(
        f"lid{i:03}@example.org,Lid {i},\n" for i in range(count)
    )


@pytest.mark.parametrize("confirmed", [False, True], ids=["pending", "confirmed"])
def test_a_failure_inside_a_batch_leaves_the_batches_before_it_whole_and_none_of_it(
    db: Database, people: ListManagement, confirmed: bool
) -> None:
    _fail_on_event_about(db, "lid014@example.org")
    with pytest.raises((NewsletterError, SQLAlchemyError)):
        people.import_csv(
            io.StringIO(numbered_file(25), newline=""),
            requester=IMPORT,
            confirmed=confirmed,
            consent_note=NOTE if confirmed else None,
            batch_rows=10,
        )
    # Lines 0-9 were the first batch; line 14 broke the second, so 10-19 are not there.
    assert stored_emails(db) == [f"lid{i:03}@example.org" for i in range(10)]
    assert subscribers_without_event(db) == 0
    with db.session() as session:
        tokens = session.scalar(select(func.count()).select_from(ConfirmationToken))
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    assert (events, tokens) == (10, 0 if confirmed else 10)


_IMPORT_IN_A_CHILD = """
import io, sys
from newsletter.core.clock import utc_now
from newsletter.core.config import settings_from_mapping
from newsletter.core.db import open_database
from subscribers.consent import Requester
from subscribers.management import ListManagement

url, path = sys.argv[1], sys.argv[2]
settings = settings_from_mapping(
    {"database": {"url": url}}, base_dir=".", env={"NEWSLETTER_SECRET_KEY": sys.argv[3]}
)
people = ListManagement(settings, open_database(url), clock=utc_now)
with open(path, encoding="utf-8", newline="") as rows:
    people.import_csv(
        rows, requester=Requester(source="import"), confirmed=True, consent_note="x",
        batch_rows=50,
    )
"""


def test_a_process_killed_midway_leaves_whole_batches_each_with_its_consent_events(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "leden.csv"
    path.write_text(numbered_file(1000), encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, "-c", _IMPORT_IN_A_CHILD, settings.database_url, str(path), SECRET],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        # Kill it as soon as a first batch is in (or when it is done, on a fast machine).
        deadline = time.monotonic() + 120
        while not stored_emails(db) and child.poll() is None:
            assert time.monotonic() < deadline, "the import stored nothing in 120 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    stored = len(stored_emails(db))
    assert stored > 0 and stored % 50 == 0
    assert subscribers_without_event(db) == 0
    with db.session() as session:
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    assert events == stored


ADDRESSES = [
    "a@example.org",
    "A.B@Example.ORG",
    " x@example.org ",
    "a+tag@example.org",
    "a/b=c@example.org",
    "user@sub.example.co.uk",
    "a" * 64 + "@example.org",
    "a" * 65 + "@example.org",
    "a@" + "b" * 250 + ".org",
    "a@" + ".".join(["b" * 63] * 3) + ".org",
    "a@b",
    "a@localhost",
    "a@x.test",
    "a@example.invalid",
    "a@exa_mple.org",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    '"a b"@example.org',
    "zoë@example.org",
    "a@bücher.de",
    "a@xn--bcher-kva.de",
    "a@ΕΛΛΑΔΑ.gr",
    "a@example.org.",
    "a@[192.0.2.1]",
    "a@-ex.org",
    "a@example.123",
    "",
    "@",
    "a@",
    "a@@example.org",
    "a b@example.org",
    "a@ex ample.org",
]


def _normalized(normalize: Callable[[str], Any], raw: str) -> Any:
    try:
        return normalize(raw)
    except InvalidInput as exc:
        return exc.problems


def test_the_file_readers_address_check_gives_what_normalize_address_gives() -> None:
    normalize = AddressNormalizer()
    for _ in range(2):  # the second time from what it remembers of each domain
        for raw in ADDRESSES:
            assert _normalized(normalize, raw) == _normalized(normalize_address, raw), raw


def test_a_confirmation_rendered_once_per_themes_is_the_mail_rendered_for_each(
    settings: Settings, clock: FixedClock
) -> None:
    op = Operation(settings, SECRET, SubscriberMails(settings), clock())
    mails = ConfirmationMails(op)
    for to, token, themes in [
        ("een@example.org", "abc_DEF-123", ("doe-je-mee",)),
        ("twee@example.org", "xyz-987_q", ("doe-je-mee",)),
        ("drie@example.org", "t0ken", ()),
    ]:
        direct: OutgoingMail = op.mails.confirmation(
            to, confirm_url=f"{settings.site.base_url}/confirm/{token}", themes=themes
        )
        assert mails.confirmation(to, token, themes) == direct
